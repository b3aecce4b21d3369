package session

import "sync"

// outbox queues a session's events and delivers them on one channel.
//
// The queue is unbounded except for progress events: a progress event
// that finds another progress event at the tail of the queue replaces it.
// A session queues at most a few dozen events (steps, prompts, launcher
// attempts), so memory stays small however slow the reader is. Pushing
// never blocks, so the session's work never waits for its reader.
//
// Delivery starts with the first call to ch: a session whose events are
// never asked for starts no goroutine. The channel is closed after the
// final event was received, or when stop is closed.
type outbox struct {
	stop <-chan struct{}

	mu      sync.Mutex
	q       []Event
	final   bool
	started bool
	wake    chan struct{}
	out     chan Event
}

func newOutbox(stop <-chan struct{}) *outbox {
	return &outbox{stop: stop, wake: make(chan struct{}, 1), out: make(chan Event)}
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

func (o *outbox) pump() {
	defer close(o.out)
	for {
		o.mu.Lock()
		if len(o.q) == 0 {
			final := o.final
			o.mu.Unlock()
			if final {
				return
			}
			select {
			case <-o.wake:
				continue
			case <-o.stop:
				return
			}
		}
		e := o.q[0]
		o.q[0] = Event{}
		o.q = o.q[1:]
		o.mu.Unlock()
		select {
		case o.out <- e:
		case <-o.stop:
			return
		}
	}
}
