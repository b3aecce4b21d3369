package discovery

import (
	"context"
	"maps"
	"slices"
)

// Broadcaster fans one Merge stream out to any number of live views, so
// that a console with many pages (or windows, or technicians) runs one
// discovery, not one per page: one sweep, one directory bind.
//
// It remembers the latest state of every host of the stream and which
// sources have finished. NewView returns a live view seeded with what was
// seen so far that keeps receiving the stream's later updates.
//
// Event ordering. A view created by NewView receives, in this order:
//   - a HostNew update for every host the Broadcaster knows at that moment,
//     with its latest merged state, in ascending HostID order;
//   - a SourceDone update for every source that had already finished, in
//     the order they finished;
//   - then every later update of the stream, exactly in the order Merge
//     sent it (so per host: new, changed..., removed last; a SourceDone
//     after every update its source caused);
//   - once the stream is closed, the view's Complete event.
//
// The view turns these into Show, Hide, SourceFinished and Complete events
// as any live view does (see View and NewLiveView). No update is lost or
// sent twice to a view, however its creation interleaves with the stream.
//
// Flow. The Broadcaster reads the stream as fast as Merge sends it; it hands
// each update to every view in turn. A View never blocks its input for
// longer than it takes to fold one update, so a slow page (whose events
// wait, folded, in its own view) does not slow the others or the
// discoverers. A view whose context is done is dropped.
//
// A Broadcaster does not run discoverers itself and does not restart a
// finished scan; it does not filter (each view has its own filter). The zero
// Broadcaster has no stream: its views complete at once with no host.
type Broadcaster struct {
	subc chan *subscriber
	done chan struct{} // closed when the loop returns (ctx done)
}

type subscriber struct {
	ctx context.Context
	in  chan Update
}

// NewBroadcaster starts fanning out updates, typically
// Merge(ctx, discoverers...), until ctx is done. It keeps every host of the
// stream in memory for later views (as each View does).
func NewBroadcaster(ctx context.Context, updates <-chan Update) *Broadcaster {
	b := &Broadcaster{subc: make(chan *subscriber), done: make(chan struct{})}
	go b.loop(ctx, updates)
	return b
}

// NewView returns a live view under filter f, seeded with the hosts seen so
// far and receiving the stream's later updates (see the ordering in the
// type's doc). It ends when ctx is done. When the Broadcaster has stopped
// (its context is done) or is the zero value, the view shows nothing and,
// for the zero value only, completes at once.
func (b *Broadcaster) NewView(ctx context.Context, f Filter) *View {
	in := make(chan Update)
	v := NewLiveView(ctx, in, f)
	if b == nil || b.subc == nil {
		close(in)
		return v
	}
	select {
	case b.subc <- &subscriber{ctx: ctx, in: in}:
	case <-b.done:
	case <-ctx.Done():
	}
	return v
}

func (b *Broadcaster) loop(ctx context.Context, updates <-chan Update) {
	defer close(b.done)
	hosts := make(map[HostID]Host)
	var finished []Update
	var subs []*subscriber
	in := updates
	// send hands u to s, reporting false when s (or the Broadcaster) has
	// ended.
	send := func(s *subscriber, u Update) bool {
		u.Host = Clone(u.Host) // each receiver owns its slices
		select {
		case s.in <- u:
			return true
		case <-s.ctx.Done():
			return false
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case u, ok := <-in:
			if !ok {
				in = nil
				for _, s := range subs {
					close(s.in)
				}
				subs = nil
				continue
			}
			switch u.Kind {
			case HostNew, HostChanged:
				hosts[u.ID] = u.Host
			case HostRemoved:
				delete(hosts, u.ID)
			case SourceDone:
				finished = append(finished, u)
			}
			subs = slices.DeleteFunc(subs, func(s *subscriber) bool { return !send(s, u) })
		case s := <-b.subc:
			alive := true
			for _, id := range slices.Sorted(maps.Keys(hosts)) {
				if alive = send(s, Update{Kind: HostNew, ID: id, Host: hosts[id]}); !alive {
					break
				}
			}
			for _, u := range finished {
				if !alive {
					break
				}
				alive = send(s, u)
			}
			switch {
			case !alive:
			case in == nil:
				close(s.in) // the stream is over: the view completes
			default:
				subs = append(subs, s)
			}
		case <-ctx.Done():
			return
		}
	}
}
