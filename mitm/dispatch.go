package mitm

import "sync"

// dispatchQueue is how many finished flows may wait for the recorders. A
// full queue makes finish wait, so a disk slower than the traffic slows
// the clients instead of growing memory; 256 flows are a few seconds of a
// class's browsing, and their bodies' memory is bounded by bodyBudget
// anyway.
const dispatchQueue = 256

// dispatcher takes the recorders off the requests' goroutines: finish
// queues a flow and returns, and one goroutine hands each flow to every
// recorder in turn, in the order the flows finished, then gives the flow's
// body memory back. The client no longer waits for a JSON encoder and a
// disk write before the end of its response, and the recorders see one
// flow at a time.
//
// The proxy wraps its recorders in one dispatcher (recording), which is
// then its only Recorder. Shutdown stops it (stop) once every flow is
// queued: the recorders have had every flow when Shutdown returns, so the
// files are complete after a stop. A flow that finishes later still
// reaches them, on its own goroutine.
type dispatcher struct {
	recs  []Recorder
	queue chan *Flow
	done  chan struct{}

	// room is signalled each time a flow has been recorded: a flow waits
	// for it (see waitRoom) while captured bodies hold half the memory
	// budget and flows are queued already.
	roomMu sync.Mutex
	room   *sync.Cond

	mu      sync.RWMutex // held shared while queueing, so that stop does not close the queue under a send
	stopped bool
	late    sync.Mutex // flows recorded after stop, one at a time
}

func newDispatcher(recs []Recorder) *dispatcher {
	d := &dispatcher{recs: recs, queue: make(chan *Flow, dispatchQueue), done: make(chan struct{})}
	d.room = sync.NewCond(&d.roomMu)
	go d.run()
	return d
}

// recording returns the body cap and the recorders a Proxy works with: a
// negative cap (count bodies, copy no byte) when no recorder reads bodies,
// the default for 0, and the recorders behind a dispatcher.
func recording(bodyCap int64, recs []Recorder) (int64, []Recorder) {
	switch {
	case !wantBodies(recs):
		bodyCap = -1
	case bodyCap == 0:
		bodyCap = DefaultBodyCap
	}
	if len(recs) == 0 {
		return bodyCap, nil
	}
	return bodyCap, []Recorder{newDispatcher(recs)}
}

func (d *dispatcher) run() {
	defer close(d.done)
	for f := range d.queue {
		d.deliver(f)
		d.roomMu.Lock()
		d.room.Broadcast()
		d.roomMu.Unlock()
	}
}

// waitRoom waits, before a flow is queued, while captured bodies hold more
// than half the memory budget and flows are waiting already: queued flows
// keep their bodies until recorded, so when the recorders fall behind (a
// disk slower than the traffic) a queue of large bodies would otherwise
// fill the budget and send the bodies still arriving to disk, twice the
// writes on the disk that is already too slow. Waiting here instead slows
// the clients down to what the recorders can write. The queue never waits
// when it is empty, so the recorders always have a flow to work on.
func (d *dispatcher) waitRoom() {
	d.roomMu.Lock()
	for bodyMemory.Load() > bodyBudget/2 && len(d.queue) > 0 {
		d.room.Wait()
	}
	d.roomMu.Unlock()
}

func (d *dispatcher) deliver(f *Flow) {
	for _, r := range d.recs {
		r.Record(f)
	}
	if f.Request != nil {
		f.Request.Body.release()
	}
	if f.Response != nil {
		f.Response.Body.release()
	}
}

// Record queues f, waiting while the queue is full or the bodies queued
// hold much memory (waitRoom).
func (d *dispatcher) Record(f *Flow) {
	d.mu.RLock()
	if !d.stopped {
		d.waitRoom()
		d.queue <- f
		d.mu.RUnlock()
		return
	}
	d.mu.RUnlock()
	d.late.Lock()
	defer d.late.Unlock()
	d.deliver(f)
}

// stop waits until every queued flow is recorded. Flows recorded after it
// are delivered at once.
func (d *dispatcher) stop() {
	d.mu.Lock()
	if !d.stopped {
		d.stopped = true
		close(d.queue)
	}
	d.mu.Unlock()
	<-d.done
}

// Close stops the dispatcher; the recorders behind it are their owner's
// to close.
func (d *dispatcher) Close() error {
	d.stop()
	return nil
}

// stopRecording stops the dispatchers among recs (see Proxy.Shutdown).
func stopRecording(recs []Recorder) {
	for _, r := range recs {
		if d, ok := r.(*dispatcher); ok {
			d.stop()
		}
	}
}
