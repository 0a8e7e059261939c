package mitm

import "errors"

// errLocked is lockFile's answer for a file another process holds.
var errLocked = errors.New("mitm: the file is locked by another process")
