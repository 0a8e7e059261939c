package mitm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Recorder receives every finished flow. Record is called from many
// goroutines; Close once, at shutdown.
type Recorder interface {
	Record(f *Flow)
	Close() error
}

// RecorderFunc adapts a function (e.g. a console printer) to Recorder.
type RecorderFunc func(*Flow)

func (fn RecorderFunc) Record(f *Flow) { fn(f) }
func (RecorderFunc) Close() error      { return nil }

// JSONL writes one flow per line, flushed per flow, so `tail -f` and a
// crash both see every finished flow. &, < and > are written as they are,
// not as \u0026 and the like, so `grep 'a=1&b=2'` finds a form body.
type JSONL struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	err error
}

// CreateJSONL creates (or truncates) path with mode 0600: flows hold
// plaintext, cookies and passwords.
func CreateJSONL(path string) (*JSONL, error) {
	f, err := openPrivate(path)
	if err != nil {
		return nil, err
	}
	return &JSONL{f: f, w: bufio.NewWriter(f)}, nil
}

// Record appends the flow.
func (j *JSONL) Record(f *Flow) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return
	}
	b, err := marshal(f)
	if err == nil {
		b = append(b, '\n')
		_, err = j.w.Write(b)
	}
	if err == nil {
		err = j.w.Flush()
	}
	j.err = err
}

// Close flushes and closes the file, reporting the first write error.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return j.err
	}
	err := j.w.Flush()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	if j.err != nil {
		return fmt.Errorf("mitm: write flows: %w", j.err)
	}
	return err
}

// openPrivate creates path for writing with mode 0600, whatever the umask.
func openPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("mitm: %w", err)
	}
	return f, nil
}

// syncWriter serialises writes from many TLS connections (key log lines).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// KeyLog is an NSS key-log file (the SSLKEYLOGFILE format Wireshark reads),
// written 0600: its lines decrypt every recorded session.
type KeyLog struct {
	syncWriter
	f *os.File
}

// CreateKeyLog creates path for key-log lines.
func CreateKeyLog(path string) (*KeyLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("mitm: %w", err)
	}
	f, err := openPrivate(path)
	if err != nil {
		return nil, err
	}
	return &KeyLog{syncWriter: syncWriter{w: f}, f: f}, nil
}

// Close closes the file.
func (k *KeyLog) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.f.Close()
}
