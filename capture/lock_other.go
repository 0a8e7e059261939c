//go:build !unix

package capture

import "os"

// lockFile does nothing where flock(2) does not exist (see the Unix
// version).
func lockFile(*os.File) error { return nil }
