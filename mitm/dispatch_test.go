package mitm

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blockedRecorder holds every Record until release is closed.
type blockedRecorder struct {
	release chan struct{}
	n       atomic.Int64
}

func (b *blockedRecorder) Record(*Flow) {
	<-b.release
	b.n.Add(1)
}
func (b *blockedRecorder) Close() error { return nil }

// TestRecordersOffTheRequest: a recorder that takes its time (a slow disk)
// no longer holds the client's response: the client has it all while the
// recorder still has the flow. The proxy used to call the recorders at the
// end of the response body, before the last chunk went to the client.
func TestRecordersOffTheRequest(t *testing.T) {
	w := newWorld(t)
	close(w.origin.release) // /slow answers at once
	slow := &blockedRecorder{release: make(chan struct{})}
	p := w.startProxy(t, func(c *Config) { c.Recorders = []Recorder{slow} })
	defer close(slow.release)
	client := p.client(w.roguePool, false)
	client.Timeout = 3 * time.Second
	for _, path := range []string{"/slow", "/"} { // chunked, then on the same connection
		resp, err := client.Get(w.url(path))
		if err != nil {
			t.Fatalf("GET %s with a recorder that does not return: %v", path, err)
		}
		if _, err := io.ReadAll(resp.Body); err != nil {
			t.Fatalf("GET %s with a recorder that does not return: the body did not end: %v", path, err)
		}
		resp.Body.Close()
	}
	if n := slow.n.Load(); n != 0 {
		t.Fatalf("the blocked recorder recorded %d flows", n)
	}
}

// TestDispatcherBackPressure: the queue holds dispatchQueue flows; past it
// Record waits for the recorders, so memory stays bounded; the flows reach
// the recorders in order.
func TestDispatcherBackPressure(t *testing.T) {
	slow := &blockedRecorder{release: make(chan struct{})}
	var order []string
	var mu sync.Mutex
	keep := RecorderFunc(func(f *Flow) { mu.Lock(); order = append(order, f.ID); mu.Unlock() })
	d := newDispatcher([]Recorder{slow, keep})
	// One flow is with the recorder, dispatchQueue wait in the queue.
	for i := range dispatchQueue + 1 {
		d.Record(&Flow{ID: string(rune('a' + i%26))})
	}
	queued := make(chan struct{})
	go func() {
		d.Record(&Flow{ID: "last"})
		close(queued)
	}()
	select {
	case <-queued:
		t.Fatalf("Record of flow %d returned with the queue full", dispatchQueue+2)
	case <-time.After(100 * time.Millisecond):
	}
	close(slow.release)
	<-queued
	d.stop()
	if len(order) != dispatchQueue+2 || order[0] != "a" || order[len(order)-1] != "last" {
		t.Errorf("recorded %d flows, first %q last %q; want %d in order", len(order), order[0], order[len(order)-1], dispatchQueue+2)
	}
	// After stop, a flow is recorded at once.
	d.Record(&Flow{ID: "late"})
	if order[len(order)-1] != "late" {
		t.Errorf("a flow after stop was not recorded")
	}
}

// TestShutdownDrainsRecorders: when Shutdown returns, the recorders have
// had every flow, however slow they are: the files are complete after a
// stop.
func TestShutdownDrainsRecorders(t *testing.T) {
	w := newWorld(t)
	var n atomic.Int64
	slow := RecorderFunc(func(*Flow) { time.Sleep(20 * time.Millisecond); n.Add(1) })
	p := w.startProxy(t, func(c *Config) { c.Recorders = []Recorder{slow} })
	client := p.client(w.roguePool, false)
	const requests = 20
	for range requests {
		get(t, client, w.url("/"))
	}
	p.Shutdown(t.Context())
	if got := n.Load(); got != requests {
		t.Errorf("after Shutdown the recorder has %d flows, want %d", got, requests)
	}
}

// TestNoBodyCopyWithoutBodyRecorder: with only recorders that do not read
// bodies (the console line), no body byte is copied: the flow counts the
// bytes, and no chunk is taken. With a body recorder, the body is kept.
func TestNoBodyCopyWithoutBodyRecorder(t *testing.T) {
	w := newWorld(t)
	for _, wants := range []bool{false, true} {
		flows := make(chan *Flow, 1)
		var rec Recorder = RecorderFunc(func(f *Flow) { flows <- f })
		if wants {
			rec = bodyRecorderFunc(func(f *Flow) { f.Response.Body.Keep(); flows <- f })
		}
		p := w.startProxy(t, func(c *Config) { c.Recorders = []Recorder{rec} })
		before := bodyMemory.Load()
		req, _ := http.NewRequest("GET", w.url("/big?n=1000000"), nil)
		resp, err := p.client(w.roguePool, false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		during := bodyMemory.Load()
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		f := <-flows
		b := f.Response.Body
		if b.Size != 1000000 {
			t.Errorf("body recorders %v: size %d, want 1000000", wants, b.Size)
		}
		switch {
		case !wants && (b.Len() != 0 || during != before):
			t.Errorf("no body recorder: %d bytes recorded, chunk memory %d → %d; want none copied", b.Len(), before, during)
		case wants && b.Len() != 1000000:
			t.Errorf("a body recorder: %d bytes recorded, want 1000000", b.Len())
		}
	}
}

// bodyRecorderFunc is a RecorderFunc that wants bodies.
type bodyRecorderFunc func(*Flow)

func (fn bodyRecorderFunc) Record(f *Flow) { fn(f) }
func (bodyRecorderFunc) Close() error      { return nil }
func (bodyRecorderFunc) WantsBodies() bool { return true }

// TestDispatcherHoldsBackLargeBodies: while captured bodies hold more than
// half the memory budget, a flow waits for the one before it to be
// recorded rather than queue its body too; with the queue empty it never
// waits.
func TestDispatcherHoldsBackLargeBodies(t *testing.T) {
	slow := &blockedRecorder{release: make(chan struct{})}
	d := newDispatcher([]Recorder{slow})
	defer d.stop()
	bodyMemory.Add(bodyBudget) // as if large bodies were waiting
	defer bodyMemory.Add(-bodyBudget)
	d.Record(&Flow{ID: "1"}) // taken by the recorder at once
	deadline := time.Now().Add(time.Second)
	for len(d.queue) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	d.Record(&Flow{ID: "2"}) // the queue is empty: it does not wait
	queued := make(chan struct{})
	go func() {
		d.Record(&Flow{ID: "3"})
		close(queued)
	}()
	select {
	case <-queued:
		t.Fatal("a flow was queued behind another with the body budget spent")
	case <-time.After(100 * time.Millisecond):
	}
	close(slow.release)
	select {
	case <-queued:
	case <-time.After(5 * time.Second):
		t.Fatal("the flow still waits after the recorder caught up")
	}
}
