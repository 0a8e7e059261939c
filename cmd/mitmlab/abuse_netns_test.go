//go:build interop

package main

// Network namespaces of the suite's own: cases that could make the proxy
// dial off this machine run the proxy, its clients and its origins in one.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// netNS is a network namespace of the test's own, with only loopback up:
// nothing sent in it can leave the machine.
type netNS struct{ name string }

var nsSeq atomic.Int64

func newNetNS(t *testing.T) *netNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: this case runs the proxy in a network namespace of its own (ip netns add), so that nothing it dials can leave loopback")
	}
	need(t, "ip")
	n := &netNS{name: fmt.Sprintf("mitmlab-abuse-%d-%d", os.Getpid(), nsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", n.name, err, out)
		}
	})
	n.ip(t, "link", "set", "lo", "up")
	return n
}

// ip runs `ip -n NS args...`.
func (n *netNS) ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", n.name}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
}

// wrap turns argv into a command that runs inside the namespace.
func (n *netNS) wrap(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.name}, argv...)
}

// do runs f on an OS thread switched into the namespace: sockets f creates
// live there for good. The thread is switched back before it is released:
// a thread that ends would take with it (Pdeathsig) the processes forked
// from it, such as a proxy. If switching back fails, the thread stays
// locked and ends with its goroutine.
func (n *netNS) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open("/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		err = f()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// listen listens in ns (nil: here).
func listenIn(ns *netNS, network, addr string) (net.Listener, error) {
	if ns == nil {
		return net.Listen(network, addr)
	}
	var ln net.Listener
	err := ns.do(func() (err error) { ln, err = net.Listen(network, addr); return })
	return ln, err
}

// dialIn dials from ns (nil: here), from the local address local ("" for
// any), before ctx's deadline.
func dialIn(ctx context.Context, ns *netNS, local, addr string) (net.Conn, error) {
	d := net.Dialer{}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	if ns == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	var c net.Conn
	err := ns.do(func() (err error) { c, err = d.DialContext(ctx, "tcp", addr); return })
	return c, err
}
