package capture

import (
	"fmt"
	"io/fs"
	"os"
)

// CheckOutput says whether path can take an output file: absent (it will be
// created) or a regular file (it will be replaced whole). Anything else is
// refused with a sentence that says why: a file is written through a
// temporary file renamed onto path, which would replace a device such as
// /dev/null with a regular file for the whole machine, or chmod it to 0600.
func CheckOutput(path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().IsRegular() {
		return nil // absent, or an error the open will report
	}
	kind := "not a regular file"
	switch m := fi.Mode(); {
	case m.IsDir():
		kind = "a directory"
	case m&fs.ModeDevice != 0:
		kind = "a device"
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	}
	return fmt.Errorf("%s is %s, not a file: give the path of a file to write (each output is a file of its own, mode 0600, written through a temporary file renamed onto the path, which would replace or change %s)", path, kind, path)
}
