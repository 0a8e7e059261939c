package mitm

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Rotation bounds a recording file. When the file reaches MaxSize bytes it
// is completed and renamed NAME.1.EXT, the older ones shift to NAME.2.EXT …
// NAME.Keep.EXT, the oldest beyond Keep is deleted, and a new NAME.EXT
// starts: at most (Keep+1)·MaxSize bytes stay on disk (a little more, as a
// file is completed after the flow that crossed the limit).
type Rotation struct {
	// MaxSize is the size at which the file rotates; 0 means no limit.
	MaxSize int64
	// Keep is how many completed files are kept beside the current one.
	Keep int
	// Logger receives a warning at the first rotation and at every file
	// deleted; nil discards.
	Logger *slog.Logger
}

func (r Rotation) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// rotatedName is the name of the k-th completed file of path:
// flows.jsonl → flows.1.jsonl, plain.pcap → plain.1.pcap.
func rotatedName(path string, k int) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "." + strconv.Itoa(k) + ext
}

// rotateNamed completes path: it shifts the completed files of path up by
// one (deleting the one at keep) and renames path to NAME.1.EXT, or
// deletes path when keep is 0. It returns the file deleted, if any.
func rotateNamed(path string, keep int) (deleted string, err error) {
	if keep <= 0 {
		if err := os.Remove(path); err != nil {
			return "", fmt.Errorf("mitm: rotate %s: %w", path, err)
		}
		return path, nil
	}
	if deleted, err = shiftRotated(path, keep); err != nil {
		return deleted, fmt.Errorf("mitm: rotate %s: %w", path, err)
	}
	if err := os.Rename(path, rotatedName(path, 1)); err != nil {
		return deleted, fmt.Errorf("mitm: rotate %s: %w", path, err)
	}
	return deleted, nil
}

// shiftRotated makes room for a new NAME.1.EXT: it deletes NAME.keep.EXT
// (returning its name when there was one) and renames NAME.k.EXT to
// NAME.k+1.EXT. A missing one is not an error.
func shiftRotated(path string, keep int) (deleted string, err error) {
	oldest := rotatedName(path, keep)
	if err := os.Remove(oldest); err == nil {
		deleted = oldest
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	for k := keep - 1; k >= 1; k-- {
		err := os.Rename(rotatedName(path, k), rotatedName(path, k+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return deleted, err
		}
	}
	return deleted, nil
}

// removeRotated deletes the completed files an earlier run of path left
// (NAME.1.EXT … NAME.keep.EXT), so the files beside NAME.EXT are always
// this run's: a new run replaces the last one's recording, as it replaces
// NAME.EXT itself.
func removeRotated(path string, keep int) {
	for k := 1; k <= keep; k++ {
		os.Remove(rotatedName(path, k))
	}
}

// rotateBodies does to NAME.bodies what rotateNamed did to the flows file
// at path: it shifts the completed ones up by one, deleting the one past
// keep, and renames NAME.bodies to NAME.1.bodies when the current file
// had one (had). A flows file without large bodies has no bodies file,
// so gaps are normal: a missing one is not an error.
func rotateBodies(path string, keep int, had bool) error {
	bp := bodiesPath(path)
	if keep <= 0 {
		if err := os.Remove(bp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if _, err := shiftRotated(bp, keep); err != nil {
		return err
	}
	if had {
		return os.Rename(bp, rotatedName(bp, 1))
	}
	return nil
}
