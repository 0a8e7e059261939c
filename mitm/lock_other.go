//go:build !unix

package mitm

import "os"

// lockFile does nothing where flock(2) does not exist: the leftovers scan
// cannot tell a live writer's file there (see the Unix version).
func lockFile(*os.File) error { return nil }
