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
	oldest := rotatedName(path, keep)
	if err := os.Remove(oldest); err == nil {
		deleted = oldest
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("mitm: rotate %s: %w", path, err)
	}
	for k := keep - 1; k >= 1; k-- {
		err := os.Rename(rotatedName(path, k), rotatedName(path, k+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return deleted, fmt.Errorf("mitm: rotate %s: %w", path, err)
		}
	}
	if err := os.Rename(path, rotatedName(path, 1)); err != nil {
		return deleted, fmt.Errorf("mitm: rotate %s: %w", path, err)
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
