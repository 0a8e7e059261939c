package mitm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mitmlab/mitmlab/capture"
)

// Leftover is one hidden file that an earlier run writing the same output
// left behind, and what FindLeftovers did with it.
type Leftover struct {
	// Path is the hidden file, e.g. dir/.plain.pcap.tmp-123.
	Path string
	// Recovered names the file its complete part was saved to (then Path
	// is gone); empty when it was deleted or, InUse, left alone.
	Recovered string
	// Count is the number of packets or HAR entries recovered, of Unit.
	Count int
	Unit  string
	// Reason says why the file was deleted (it held nothing complete).
	Reason string
	// InUse means a running process holds the file (its lock is taken):
	// another proxy writing the same output. It was not touched.
	InUse bool
}

// String says what was done, in the words of the start-up message:
// "recovered 1234 packets into plain.recovered-20261201-203000.pcap",
// "deleted .flows.har.tmp-123 (incomplete)".
func (l Leftover) String() string {
	switch {
	case l.InUse:
		return fmt.Sprintf("left %s alone (a running process is writing it)", filepath.Base(l.Path))
	case l.Recovered != "":
		unit := l.Unit
		switch {
		case l.Count == 1:
		case strings.HasSuffix(unit, "y"):
			unit = strings.TrimSuffix(unit, "y") + "ies"
		default:
			unit += "s"
		}
		return fmt.Sprintf("recovered %d %s into %s", l.Count, unit, filepath.Base(l.Recovered))
	}
	return fmt.Sprintf("deleted %s (%s)", filepath.Base(l.Path), l.Reason)
}

// FindLeftovers looks beside each of the outputs a run is about to write
// (a HAR file, a pcap or pcapng) for the hidden files an earlier run of the
// same outputs left when it did not stop cleanly (killed, crashed, the
// machine lost power): the temporary files of a capture or a HAR being
// written (.NAME.tmp-*) and the entry spools of older mitmlab versions'
// HAR (.NAME.entries-*). Each is made into a valid file or deleted:
//
//   - a capture's temporary file is cut after its last complete record
//     (capture.Salvage) and renamed NAME.recovered-YYYYMMDD-HHMMSS.EXT,
//     mode 0600, the time being the file's last write;
//   - a HAR entries spool's complete entries become a HAR at
//     NAME.recovered-YYYYMMDD-HHMMSS.har;
//   - a HAR's temporary file is incomplete by nature (it is renamed into
//     place once whole), and is deleted, as is any file with nothing
//     complete in it.
//
// A file a running process holds (its flock taken: another proxy on the
// same outputs) is not touched. Call it before creating the outputs.
func FindLeftovers(outputs []string) ([]Leftover, error) {
	var found []Leftover
	var errs []error
	for _, out := range outputs {
		if out == "" {
			continue
		}
		dir, base := filepath.Dir(out), filepath.Base(out)
		for _, suffix := range []string{".tmp-*", ".entries-*"} {
			// Dir and base come from the person's flags: escape what Glob
			// would read as a pattern.
			paths, err := filepath.Glob(filepath.Join(globEscape(dir), globEscape("."+base)+suffix))
			if err != nil {
				errs = append(errs, fmt.Errorf("mitm: look for leftovers of %s: %w", out, err))
				continue
			}
			for _, path := range paths {
				l, err := cleanLeftover(out, path)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				found = append(found, l)
			}
		}
	}
	return found, errors.Join(errs...)
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// cleanLeftover recovers or deletes path, a leftover of output.
func cleanLeftover(output, path string) (Leftover, error) {
	l := Leftover{Path: path}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		l.Reason = "gone"
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("mitm: leftover %s: %w", path, err)
	}
	defer f.Close()
	if err := lockFile(f); errors.Is(err, errLocked) {
		l.InUse = true
		return l, nil
	} else if err != nil {
		return l, fmt.Errorf("mitm: leftover %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return l, fmt.Errorf("mitm: leftover %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return l, fmt.Errorf("mitm: leftover %s is not a regular file; remove it by hand", path)
	}
	recovered := recoveredName(output, fi.ModTime())
	spool := strings.TrimPrefix(filepath.Base(path), "."+filepath.Base(output))
	switch {
	case strings.HasPrefix(spool, ".tmp-") && captureOutput(output):
		l.Unit = "packet"
		length, packets, err := capture.Salvage(f)
		if err != nil {
			l.Reason = "not a capture"
			break
		}
		if packets == 0 {
			l.Reason = "no packets"
			break
		}
		if err := f.Truncate(length); err != nil {
			return l, fmt.Errorf("mitm: recover %s: %w", path, err)
		}
		if err := f.Chmod(0o600); err != nil {
			return l, fmt.Errorf("mitm: recover %s: %w", path, err)
		}
		if recovered, err = renameFree(path, recovered); err != nil {
			return l, fmt.Errorf("mitm: recover %s: %w", path, err)
		}
		l.Recovered, l.Count = recovered, packets
		return l, nil
	case strings.HasPrefix(spool, ".entries-"):
		l.Unit = "HAR entry"
		n, err := recoverEntries(f, recovered)
		if err != nil {
			return l, fmt.Errorf("mitm: recover %s: %w", path, err)
		}
		if n == 0 {
			l.Reason = "no complete entry"
			break
		}
		if l.Recovered, err = renameFree(recovered+".part", recovered); err != nil {
			os.Remove(recovered + ".part")
			return l, fmt.Errorf("mitm: recover %s: %w", path, err)
		}
		l.Count = n
		if err := os.Remove(path); err != nil {
			return l, fmt.Errorf("mitm: remove %s: %w", path, err)
		}
		return l, nil
	default:
		l.Reason = "incomplete"
	}
	if err := os.Remove(path); err != nil {
		return l, fmt.Errorf("mitm: remove %s: %w", path, err)
	}
	return l, nil
}

func captureOutput(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".pcap" || ext == ".pcapng"
}

// recoveredName is NAME.recovered-YYYYMMDD-HHMMSS.EXT beside output.
func recoveredName(output string, t time.Time) string {
	ext := filepath.Ext(output)
	return strings.TrimSuffix(output, ext) + ".recovered-" + t.Local().Format("20060102-150405") + ext
}

// renameFree renames from to, or to NAME-2.EXT, NAME-3.EXT … when to
// exists: a recovered file never replaces another.
func renameFree(from, to string) (string, error) {
	ext := filepath.Ext(to)
	name := to
	for i := 2; ; i++ {
		// A hard link fails when the name exists, where a rename would
		// replace it.
		err := os.Link(from, name)
		if err == nil {
			return name, os.Remove(from)
		}
		if !errors.Is(err, fs.ErrExist) {
			// A file system without hard links (vfat, exFAT, some FUSE):
			// check the name, then rename (the race with another run is
			// one of two recoveries of the same leftover, both valid).
			if _, serr := os.Lstat(name); errors.Is(serr, fs.ErrNotExist) {
				return name, os.Rename(from, name)
			} else if serr != nil {
				return "", err
			}
			err = fs.ErrExist
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		if i > 100 {
			return "", fmt.Errorf("%s and 99 more names like it exist", to)
		}
		name = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(to, ext), i, ext)
	}
}

// recoverEntries writes the complete entries of an older mitmlab's HAR
// spool (entries joined by commas, the last maybe cut) as a HAR archive at
// dst+".part", returning how many there were. Each entry is copied as it
// is, after encoding/json read it whole.
func recoverEntries(spool io.Reader, dst string) (int, error) {
	// A .part is this function's own, unfinished: one that a killed
	// recovery left is replaced.
	os.Remove(dst + ".part")
	tmp, err := os.OpenFile(dst+".part", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriter(tmp)
	w.WriteString(`{"log":{"version":"1.2","creator":{"name":"mitmlab","version":"recovered"},"pages":[],"entries":[`)
	dec := json.NewDecoder(io.MultiReader(strings.NewReader("["), spool))
	dec.Token() // the "[" added above
	n := 0
	for dec.More() {
		var e json.RawMessage
		if dec.Decode(&e) != nil || len(e) == 0 || e[0] != '{' {
			break // the cut: what follows is not whole
		}
		if n > 0 {
			w.WriteByte(',')
		}
		w.Write(e)
		n++
	}
	w.WriteString("]}}\n")
	err = w.Flush()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil || n == 0 {
		os.Remove(dst + ".part")
	}
	return n, err
}
