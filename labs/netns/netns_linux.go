package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Check says what the machine lacks to build a lab network, in words a
// person can act on; nil when it has everything.
func Check() error {
	var missing []string
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "ip (Debian: apt-get install iproute2)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		missing = append(missing, "nft (Debian: apt-get install nftables)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("netns: this needs %s", strings.Join(missing, " and "))
	}
	if os.Geteuid() != 0 {
		return errors.New("netns: this needs root, to create network namespaces, veth pairs and nftables rules (run it with sudo, or as root in a VM or container)")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return errors.New("netns: this kernel has no network namespaces")
	}
	return nil
}

// New creates a namespace for role ("victim", "attacker"), with its
// loopback up. Close removes it, with every interface and rule in it.
func New(ctx context.Context, role string) (*NS, error) {
	b := make([]byte, 3)
	rand.Read(b)
	name := Prefix + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b) + "-" + role
	if err := run(ctx, nil, "ip", "netns", "add", name); err != nil {
		return nil, err
	}
	n := &NS{Name: name, path: filepath.Join("/run/netns", name)}
	if _, err := os.Stat(n.path); err != nil {
		n.path = filepath.Join("/var/run/netns", name)
	}
	if err := n.IP(ctx, "link", "set", "lo", "up"); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Close deletes the namespace. Its interfaces go with it (and a veth's
// peer in another namespace), and so do its nftables tables. It does its
// work even when the lab's context is already cancelled.
func (n *NS) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return run(ctx, nil, "ip", "netns", "delete", n.Name)
}

// IP runs `ip -n NAME ARGS...`.
func (n *NS) IP(ctx context.Context, args ...string) error {
	return run(ctx, nil, "ip", append([]string{"-n", n.Name}, args...)...)
}

// NFT loads a ruleset (nft's own syntax) in the namespace.
func (n *NS) NFT(ctx context.Context, ruleset string) error {
	return run(ctx, strings.NewReader(ruleset), "ip", "netns", "exec", n.Name, "nft", "-f", "-")
}

// Command runs a program in the namespace (`ip netns exec`), which it
// replaces: cancelling ctx kills the program itself.
func (n *NS) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, prog}, args...)...)
}

// Do runs fn on an OS thread switched into the namespace. Sockets fn makes
// belong to the namespace for good. The thread is never switched back: it
// ends with fn's goroutine (a goroutine that exits locked to its thread
// takes the thread with it), and the Go runtime starts no thread from a
// locked one, so no other goroutine ever runs in the namespace.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(n.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: open %s: %w", n.path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("netns: enter %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Veth joins a and b with a veth pair, aName in a with address aAddr and
// bName in b with bAddr, both up. The pair is made inside the namespaces,
// never in the machine's own, so nothing of it can outlive them.
func Veth(ctx context.Context, a *NS, aName string, aAddr netip.Prefix, b *NS, bName string, bAddr netip.Prefix) error {
	if err := a.IP(ctx, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name); err != nil {
		return err
	}
	for _, end := range []struct {
		ns   *NS
		name string
		addr netip.Prefix
	}{{a, aName, aAddr}, {b, bName, bAddr}} {
		if err := end.ns.IP(ctx, "addr", "add", end.addr.String(), "dev", end.name); err != nil {
			return err
		}
		if err := end.ns.IP(ctx, "link", "set", end.name, "up"); err != nil {
			return err
		}
	}
	return nil
}

// List returns the namespaces named with Prefix, of every run.
func List(ctx context.Context) ([]string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", "netns", "list")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("netns: ip netns list: %w", err)
	}
	var names []string
	for _, line := range strings.Split(out.String(), "\n") {
		// "NAME (id: 3)" or "NAME"
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, Prefix) {
			names = append(names, name)
		}
	}
	return names, nil
}

// Sweep deletes the namespaces of runs whose process is gone (killed
// before it could clean up), and returns their names. A live run's are
// left alone.
func Sweep(ctx context.Context) ([]string, error) {
	names, err := List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range names {
		pid := Owner(name)
		if pid == 0 || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if err := run(ctx, nil, "ip", "netns", "delete", name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// run runs a command, its error saying what it was and what it said.
func run(ctx context.Context, stdin *strings.Reader, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, prog, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("netns: %s %s: %s", prog, strings.Join(args, " "), msg)
	}
	return nil
}
