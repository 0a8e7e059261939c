//go:build linux

package benchkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Child is one process a harness started: a proxy, an origin, perf, tcpdump.
type Child struct {
	Name string
	PID  int
	Log  string // its stderr (and stdout, when started with Start)

	done    chan struct{}    // closed once it has exited and been reaped
	WaitErr error            // valid once Exited
	State   *os.ProcessState // valid once Exited: exit status, CPU time
}

// Supervisor knows every child still running, so that a normal end, an
// error, a signal and the global deadline all stop the same set, each by its
// PID.
type Supervisor struct {
	mu   sync.Mutex
	live map[int]*Child
}

func NewSupervisor() *Supervisor { return &Supervisor{live: map[int]*Child{}} }

// Start runs argv as a child in its own process group, so a Ctrl-C at the
// terminal reaches only us and we decide the order things stop in. Its
// output goes to logPath; extra become its fds 3, 4, ...
func (s *Supervisor) Start(name, logPath string, extra []*os.File, argv ...string) (*Child, error) {
	return s.StartSplit(name, logPath, logPath, extra, argv...)
}

// StartSplit is Start with the child's stdout and stderr in files of their
// own (the same path for both is allowed), for a child whose output is
// read afterwards.
func (s *Supervisor) StartSplit(name, stdoutPath, stderrPath string, extra []*os.File, argv ...string) (*Child, error) {
	out, err := os.OpenFile(stdoutPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy once started
	errOut := out
	if stderrPath != stdoutPath {
		errOut, err = os.OpenFile(stderrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		defer errOut.Close()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = ChildEnv()
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.ExtraFiles = extra
	// Pdeathsig covers the one exit we cannot clean up after: being
	// SIGKILLed ourselves.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, PID: cmd.Process.Pid, Log: stderrPath, done: make(chan struct{})}
	s.mu.Lock()
	s.live[c.PID] = c
	s.mu.Unlock()
	go func() {
		c.WaitErr = cmd.Wait()
		c.State = cmd.ProcessState
		s.mu.Lock()
		delete(s.live, c.PID)
		s.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// Done is closed once the child has exited and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Exited reports whether the child has exited and been reaped.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stop sends sig to the child's PID and, if it has not exited within grace,
// SIGKILLs its process group (the group's ID is the child's PID: Setpgid).
// It reports whether the child exited on sig.
func (c *Child) Stop(sig syscall.Signal, grace time.Duration) bool {
	if c.Exited() {
		return true
	}
	_ = syscall.Kill(c.PID, sig)
	select {
	case <-c.done:
		return true
	case <-time.After(grace):
	}
	c.Kill()
	return false
}

// Kill SIGKILLs the child's process group and waits (bounded) for the reap.
func (c *Child) Kill() {
	if c.Exited() {
		return
	}
	_ = syscall.Kill(-c.PID, syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// StopAll ends every child still running, gently first.
func (s *Supervisor) StopAll() {
	s.mu.Lock()
	var cs []*Child
	for _, c := range s.live {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); c.Stop(syscall.SIGTERM, 3*time.Second) }()
	}
	wg.Wait()
}

// LogTail is the end of a child's log, for an error message.
func (c *Child) LogTail() string {
	data, err := os.ReadFile(c.Log)
	if err != nil || len(data) == 0 {
		return "(no output)"
	}
	if len(data) > 1500 {
		data = data[len(data)-1500:]
	}
	return strings.TrimSpace(string(data))
}

// ChildEnv is our environment without *_PROXY (a proxy under test must
// never chain to a real proxy, and goproxy's default transport reads
// HTTPS_PROXY) and without MITMLAB_* (a user's MITMLAB_PROXY_FLOWS would
// turn recording on in the "recording off" column).
func ChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		u := strings.ToUpper(k)
		if strings.HasSuffix(u, "_PROXY") || strings.HasPrefix(u, "MITMLAB_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// FreePort asks the kernel for an unused loopback port, for the outside
// programs that want a port number rather than an inherited listener. The
// port is free again when it returns; the window in which another process
// could take it is short, and a child that loses it fails to start with a
// clear error.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ListenFile opens a loopback listener to hand to a child as an fd: no
// port race, and we know the port before the child runs.
func ListenFile() (*os.File, int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	defer ln.Close() // the *os.File is a dup
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return nil, 0, err
	}
	return f, ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitListening polls addr until it accepts a TCP connection, the child
// exits, or timeout passes.
func WaitListening(ctx context.Context, c *Child, addr string, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if c.Exited() {
			return fmt.Errorf("%s exited before listening on %s: %v; its output:\n%s", c.Name, addr, c.WaitErr, c.LogTail())
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s is not listening on %s after %v; its output:\n%s", c.Name, addr, timeout, c.LogTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ErrStopped is the failure of a load cut short by a signal or the deadline.
var ErrStopped = errors.New("stopped: interrupted or out of time")
