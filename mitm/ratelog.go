package mitm

import (
	"log/slog"
	"sync"
	"time"
)

// slogLimiter logs a warning at most once per interval per message, with
// the count of the ones it held back: a flood of refused connections or
// failed logins must be visible in the log without filling it.
type slogLimiter struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	held     map[string]int
}

func newSlogLimiter(log *slog.Logger, interval time.Duration) *slogLimiter {
	return &slogLimiter{log: log, interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

// warn logs msg with args unless msg was logged less than the interval ago.
func (l *slogLimiter) warn(msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.last[msg]) < l.interval {
		l.held[msg]++
		l.mu.Unlock()
		return
	}
	held := l.held[msg]
	l.last[msg] = now
	delete(l.held, msg)
	l.mu.Unlock()
	if held > 0 {
		args = append(args, "not_logged_since_last", held)
	}
	l.log.Warn(msg, args...)
}
