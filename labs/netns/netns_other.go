//go:build !linux

package netns

import (
	"context"
	"net/netip"
	"os/exec"
)

// Check says why the namespaces cannot be made here.
func Check() error { return ErrUnsupported }

// New fails: no namespaces here.
func New(context.Context, string) (*NS, error) { return nil, ErrUnsupported }

// Close does nothing here.
func (n *NS) Close() error { return ErrUnsupported }

// Do fails: no namespaces here.
func (n *NS) Do(func() error) error { return ErrUnsupported }

// IP fails: no namespaces here.
func (n *NS) IP(context.Context, ...string) error { return ErrUnsupported }

// NFT fails: no namespaces here.
func (n *NS) NFT(context.Context, string) error { return ErrUnsupported }

// Command returns a command that fails: no namespaces here.
func (n *NS) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "netns-unsupported")
}

// Veth fails: no namespaces here.
func Veth(context.Context, *NS, string, netip.Prefix, *NS, string, netip.Prefix) error {
	return ErrUnsupported
}

// List finds nothing here.
func List(context.Context) ([]string, error) { return nil, nil }

// Sweep removes nothing here.
func Sweep(context.Context) ([]string, error) { return nil, nil }
