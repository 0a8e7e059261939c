package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

type versionOptions struct {
	app *app
}

func (a *app) newVersionCmd(runF func(*versionOptions) error) *cobra.Command {
	opts := &versionOptions{app: a}
	return &cobra.Command{
		Use:   "version",
		Short: "Print mitmlab's module version and VCS revision",
		Args:  noArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runVersion(opts)
		},
	}
}

func runVersion(opts *versionOptions) error {
	_, err := fmt.Fprintln(opts.app.out, versionString())
	return err
}

// versionString reads what the Go toolchain stamped into the binary: the
// module version (a tag, a pseudo-version, or "(devel)") and the VCS
// revision, time and dirty flag of the checkout it was built from.
func versionString() string {
	version, rev, when, dirty := "(devel)", "unknown revision", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	out := "mitmlab " + version + " (" + rev
	if when != "" {
		out += ", " + when
	}
	if dirty {
		out += ", modified"
	}
	return out + ") " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}
