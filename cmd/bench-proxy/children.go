//go:build linux

package main

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

// child is one process the harness started: a proxy, the origin, perf.
type child struct {
	name string
	pid  int
	log  string // its stdout and stderr

	done    chan struct{} // closed once it has exited and been reaped
	waitErr error
}

// supervisor knows every child still running, so that a normal end, an
// error, a signal and the global deadline all stop the same set, each by its
// PID.
type supervisor struct {
	mu   sync.Mutex
	live map[int]*child
}

func newSupervisor() *supervisor { return &supervisor{live: map[int]*child{}} }

// start runs argv as a child in its own process group, so a Ctrl-C at the
// terminal reaches only us and we decide the order things stop in. Its
// output goes to logPath; extra become its fds 3, 4, ...
func (s *supervisor) start(name, logPath string, extra []*os.File, argv ...string) (*child, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy once started
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = extra
	// Pdeathsig covers the one exit we cannot clean up after: being
	// SIGKILLed ourselves.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, pid: cmd.Process.Pid, log: logPath, done: make(chan struct{})}
	s.mu.Lock()
	s.live[c.pid] = c
	s.mu.Unlock()
	go func() {
		c.waitErr = cmd.Wait()
		s.mu.Lock()
		delete(s.live, c.pid)
		s.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the child's PID and, if it has not exited within grace,
// SIGKILLs its process group (the group's ID is the child's PID: Setpgid).
// It reports whether the child exited on sig.
func (c *child) stop(sig syscall.Signal, grace time.Duration) bool {
	if c.exited() {
		return true
	}
	_ = syscall.Kill(c.pid, sig)
	select {
	case <-c.done:
		return true
	case <-time.After(grace):
	}
	c.kill()
	return false
}

// kill SIGKILLs the child's process group and waits (bounded) for the reap.
func (c *child) kill() {
	if c.exited() {
		return
	}
	_ = syscall.Kill(-c.pid, syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// stopAll ends every child still running, gently first.
func (s *supervisor) stopAll() {
	s.mu.Lock()
	var cs []*child
	for _, c := range s.live {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(syscall.SIGTERM, 3*time.Second) }()
	}
	wg.Wait()
}

// logTail is the end of a child's log, for an error message.
func (c *child) logTail() string {
	data, err := os.ReadFile(c.log)
	if err != nil || len(data) == 0 {
		return "(no output)"
	}
	if len(data) > 1500 {
		data = data[len(data)-1500:]
	}
	return strings.TrimSpace(string(data))
}

// childEnv is our environment without *_PROXY (a proxy under test must
// never chain to a real proxy, and goproxy's default transport reads
// HTTPS_PROXY) and without MITMLAB_* (a user's MITMLAB_PROXY_FLOWS would
// turn recording on in the "recording off" column).
func childEnv() []string {
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

// freePort asks the kernel for an unused loopback port, for the outside
// programs that want a port number rather than an inherited listener. The
// port is free again when it returns; the window in which another process
// could take it is short, and a child that loses it fails to start with a
// clear error.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// listenFile opens a loopback listener to hand to a child as an fd: no
// port race, and we know the port before the child runs.
func listenFile() (*os.File, int, error) {
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

// waitListening polls addr until it accepts a TCP connection, the child
// exits, or timeout passes.
func waitListening(ctx context.Context, c *child, addr string, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if c.exited() {
			return fmt.Errorf("%s exited before listening on %s: %v; its output:\n%s", c.name, addr, c.waitErr, c.logTail())
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s is not listening on %s after %v; its output:\n%s", c.name, addr, timeout, c.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var errStopped = errors.New("stopped: interrupted or out of time")
