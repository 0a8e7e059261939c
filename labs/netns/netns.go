package netns

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
)

// Prefix starts the name of every namespace this package makes.
const Prefix = "mitmlab-"

// ErrUnsupported is the error of every operation where there are no
// network namespaces (other systems than Linux).
var ErrUnsupported = errors.New("netns: network namespaces need Linux")

// NS is a network namespace of the lab's.
type NS struct {
	Name string // as `ip netns list` shows it
	path string // its bind mount, /run/netns/NAME
}

// Listen opens a listener inside the namespace.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Dial connects from inside the namespace.
func (n *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Owner is the process id in the name of a namespace this package made
// (the run that made it), 0 for any other name.
func Owner(name string) int {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0
	}
	pid, _, _ := strings.Cut(rest, "-")
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}
