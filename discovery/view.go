package discovery

import (
	"context"
	"slices"
	"sync"
)

// ViewEventKind says what a ViewEvent reports.
type ViewEventKind uint8

// View event kinds.
const (
	// Show: the host matches the filter; add it to the list or replace
	// the entry with this ID.
	Show ViewEventKind = iota + 1
	// Hide: remove the entry with this ID, if the list has it. The host no
	// longer matches the filter, or it was merged into another host.
	Hide
	// SourceFinished passes on a Merge SourceDone update.
	SourceFinished
	// Complete: every discoverer has returned and every host is in the
	// list. Only a live view (NewLiveView) sends it; it stays open for
	// filter changes until its context is done.
	Complete
)

// ViewEvent is one change to a filtered list of hosts.
type ViewEvent struct {
	Kind ViewEventKind
	ID   HostID
	// Host is the host's latest merged state for Show (and for Hide, its
	// last state). Its slices belong to the receiver.
	Host Host
	// Source and Err are set for SourceFinished, as in Update.
	Source string
	Err    error
}

// View is a live, filtered list over a Merge stream: what a console shows
// while discovery runs and the technician types in the filter box.
//
// Applying the events in order to a map from ID to Host gives exactly the
// hosts of the stream that match the current filter. Hide may name an ID
// the receiver never saw shown; ignore it. Like Merge, a View never drops
// an update silently and never blocks its input on a slow receiver: while
// an event for a host waits, newer ones for that host are folded into it.
type View struct {
	events chan ViewEvent
	setc   chan setFilter
	done   chan struct{}
	live   bool // stays open after updates close (NewLiveView)

	mu     sync.Mutex
	filter Filter
}

// NewView starts a view of updates under filter f. The events channel is
// closed after updates is closed and every event was received, or soon
// after ctx is done (pending events are then dropped).
func NewView(ctx context.Context, updates <-chan Update, f Filter) *View {
	v := &View{
		events: make(chan ViewEvent),
		setc:   make(chan setFilter),
		done:   make(chan struct{}),
		filter: f,
	}
	go v.loop(ctx, updates, f)
	return v
}

// NewLiveView is NewView for a list that outlives the scan, as a console's
// does: when updates is closed it sends one Complete event and stays open,
// so that SetFilter keeps re-evaluating the hosts seen, until ctx is done.
// Its events channel is closed only then.
func NewLiveView(ctx context.Context, updates <-chan Update, f Filter) *View {
	v := &View{
		events: make(chan ViewEvent),
		setc:   make(chan setFilter),
		done:   make(chan struct{}),
		filter: f,
		live:   true,
	}
	go v.loop(ctx, updates, f)
	return v
}

// Events returns the channel of view events.
func (v *View) Events() <-chan ViewEvent { return v.events }

// Filter returns the current filter.
func (v *View) Filter() Filter {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.filter
}

// SetFilter replaces the filter and re-evaluates every host seen so far:
// hosts that now match are shown, hosts that no longer match are hidden,
// and events still waiting to be received are re-evaluated too. It returns
// once the view has applied f, so every event received after SetFilter
// returns reflects f. It returns at once if the view has ended.
func (v *View) SetFilter(f Filter) {
	req := setFilter{f, make(chan struct{})}
	select {
	case v.setc <- req:
		<-req.applied
	case <-v.done:
	}
}

// setFilter is a SetFilter request; the loop closes applied once done.
type setFilter struct {
	f       Filter
	applied chan struct{}
}

type viewHost struct {
	host    Host
	shown   bool // the receiver's list has it (last delivered event was Show)
	removed bool // merged into another host: never shown again
	pending *ViewEvent
}

func (v *View) loop(ctx context.Context, updates <-chan Update, f Filter) {
	defer close(v.done)
	defer close(v.events)
	hosts := make(map[HostID]*viewHost)
	var queue []*ViewEvent
	// enqueue sets the state the receiver should reach for host id.
	enqueue := func(id HostID, vh *viewHost, visible bool) {
		if vh.pending != nil {
			if visible {
				vh.pending.Kind, vh.pending.Host = Show, Clone(vh.host)
			} else {
				vh.pending.Kind, vh.pending.Host = Hide, vh.host
			}
			return
		}
		if !visible && !vh.shown {
			return
		}
		e := &ViewEvent{Kind: Hide, ID: id, Host: vh.host}
		if visible {
			e.Kind, e.Host = Show, Clone(vh.host)
		}
		vh.pending = e
		queue = append(queue, e)
	}
	in := updates
	for {
		// Drop events that were folded into "nothing to say": a Hide for
		// a host the receiver never saw.
		for len(queue) > 0 && queue[0].Kind == Hide && queue[0].ID != 0 {
			vh := hosts[queue[0].ID]
			if vh == nil || vh.shown || vh.pending != queue[0] {
				break
			}
			id := queue[0].ID
			vh.pending = nil
			queue = queue[1:]
			if vh.removed {
				delete(hosts, id)
			}
		}
		var out chan ViewEvent
		var head ViewEvent
		if len(queue) > 0 {
			out, head = v.events, *queue[0]
		} else if in == nil && !v.live {
			return
		}
		select {
		case u, ok := <-in:
			if !ok {
				in = nil
				if v.live {
					queue = append(queue, &ViewEvent{Kind: Complete})
				}
				continue
			}
			switch u.Kind {
			case HostNew, HostChanged:
				vh := hosts[u.ID]
				if vh == nil {
					vh = &viewHost{}
					hosts[u.ID] = vh
				}
				vh.host = u.Host
				enqueue(u.ID, vh, f.Match(u.Host))
			case HostRemoved:
				if vh := hosts[u.ID]; vh != nil {
					vh.removed = true
					enqueue(u.ID, vh, false)
					if vh.pending == nil {
						delete(hosts, u.ID)
					}
				}
			case SourceDone:
				queue = append(queue, &ViewEvent{Kind: SourceFinished, Source: u.Source, Err: u.Err})
			}
		case out <- head:
			e := queue[0]
			queue[0] = nil
			queue = queue[1:]
			if e.ID != 0 {
				if vh := hosts[e.ID]; vh != nil && vh.pending == e {
					vh.pending = nil
					vh.shown = e.Kind == Show
					if vh.removed {
						delete(hosts, e.ID)
					}
				}
			}
			if len(queue) == 0 {
				queue = nil // let the backing array go
			}
		case req := <-v.setc:
			f = req.f
			v.mu.Lock()
			v.filter = f
			v.mu.Unlock()
			ids := make([]HostID, 0, len(hosts))
			for id := range hosts {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				vh := hosts[id]
				want := !vh.removed && f.Match(vh.host)
				if vh.pending != nil || want != vh.shown {
					enqueue(id, vh, want)
				}
			}
			close(req.applied)
		case <-ctx.Done():
			return
		}
	}
}
