package session

import "sync"

// outbox queues a session's events and delivers them on one channel.
//
// The channel is buffered with room for every event a session can have
// that is not a progress event (see eventBound), plus one. Pushing never
// blocks, so the session's work never waits for its reader. A progress
// event that finds another progress event at the tail of the queue
// replaces it; one goes into the channel only when the channel keeps room
// for every other event the session may still send, and is dropped when a
// newer event is queued behind it while there is no such room (the reader
// is far behind). So every other event always fits: when the final event
// is queued, the delivery goroutine moves what is queued into the
// channel, closes it and ends, whether anyone reads or not.
//
// Delivery starts with the first call to ch: a session whose events are
// never asked for starts no goroutine.
type outbox struct {
	mu      sync.Mutex
	q       []Event
	final   bool
	started bool
	// reserve is the number of non-progress events that may still be
	// sent into out; the channel keeps that much room free.
	reserve int
	wake    chan struct{}
	out     chan Event
}

// newOutbox returns an outbox for a session that sends at most bound
// events that are not progress events.
func newOutbox(bound int) *outbox {
	return &outbox{reserve: bound, wake: make(chan struct{}, 1), out: make(chan Event, bound+1)}
}

// push queues e; final marks the last event. Events after the final one
// are dropped.
func (o *outbox) push(e Event, final bool) {
	o.mu.Lock()
	if o.final {
		o.mu.Unlock()
		return
	}
	if n := len(o.q); e.Kind == EventProgress && n > 0 && o.q[n-1].Kind == EventProgress {
		o.q[n-1] = e
	} else {
		o.q = append(o.q, e)
	}
	o.final = final
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) ch() <-chan Event {
	o.mu.Lock()
	if !o.started {
		o.started = true
		go o.pump()
	}
	o.mu.Unlock()
	return o.out
}

// pump moves queued events into the channel and ends once the final
// event is in it.
func (o *outbox) pump() {
	for {
		o.mu.Lock()
		stuck := o.flush()
		if !stuck && o.final && len(o.q) == 0 {
			close(o.out)
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		if !stuck {
			<-o.wake
			continue
		}
		// Only when a session sent more events than its bound (a bug):
		// wait for the reader. The head is not a progress event, so
		// push does not replace it meanwhile.
		o.out <- o.q0()
		o.mu.Lock()
		o.sent(false)
		o.mu.Unlock()
	}
}

// flush sends what fits without blocking; o.mu is held. It reports
// whether the head of the queue is an event that does not fit.
func (o *outbox) flush() (stuck bool) {
	for len(o.q) > 0 {
		e := o.q[0]
		progress := e.Kind == EventProgress
		if progress && cap(o.out)-len(o.out) <= o.reserve {
			if len(o.q) == 1 && !o.final {
				return false // hold it: newer progress replaces it, or room comes
			}
			o.pop() // stale, and no room for it
			continue
		}
		select {
		case o.out <- e:
		default:
			return true
		}
		o.sent(progress)
	}
	return false
}

func (o *outbox) q0() Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.q[0]
}

// sent drops the head, which was sent; o.mu is held.
func (o *outbox) sent(progress bool) {
	o.pop()
	if !progress && o.reserve > 0 {
		o.reserve--
	}
}

func (o *outbox) pop() {
	o.q[0] = Event{}
	o.q = o.q[1:]
}
