package session_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// countingSource is a fake discoverer that counts its runs, as a NetBIOS
// sweep or a directory bind would be counted on the wire. Each run sends
// its hosts (named PREFIX<run>-<i>), the last one only once release is
// closed (when set), and then returns, or blocks until ctx ends when
// endless is set. It records whether two runs ever overlapped.
type countingSource struct {
	name    string
	n       int
	release chan struct{}
	endless bool

	runs     atomic.Int32
	active   atomic.Int32
	overlap  atomic.Bool
	returned atomic.Int32 // runs that returned
	// stalled, when set, is how long a cancelled run waits before it
	// returns, giving a second run the chance to overlap it.
	stalled time.Duration
}

func (s *countingSource) Name() string { return s.name }

func (s *countingSource) Discover(ctx context.Context, out chan<- discovery.Host) error {
	run := s.runs.Add(1)
	if s.active.Add(1) > 1 {
		s.overlap.Store(true)
	}
	defer s.returned.Add(1)
	defer s.active.Add(-1)
	cancelled := func() error {
		if s.stalled > 0 {
			t := time.NewTimer(s.stalled)
			defer t.Stop()
			<-t.C
		}
		return ctx.Err()
	}
	for i := range s.n {
		if i == s.n-1 && s.release != nil {
			select {
			case <-s.release:
			case <-ctx.Done():
				return cancelled()
			}
		}
		h := discovery.Host{
			Name:    fmt.Sprintf("%s%d-%d", s.name, run, i),
			Addrs:   []netip.Addr{netip.AddrFrom4([4]byte{127, byte(len(s.name)), byte(run), byte(i + 1)})},
			Sources: []discovery.Source{discovery.SourceNetBIOS},
		}
		select {
		case out <- h:
		case <-ctx.Done():
			return cancelled()
		}
	}
	if s.endless {
		<-ctx.Done()
		return cancelled()
	}
	return nil
}

// viewList applies a view's events to a list until want holds, and
// returns the list; it fails the test after a deadline, printing what it
// saw. complete reports whether a Complete event was received; closed
// whether the events channel was closed.
type viewList struct {
	v        *discovery.View
	hosts    map[discovery.HostID]string
	finished int
	complete bool
	closed   bool
}

func newViewList(v *discovery.View) *viewList {
	return &viewList{v: v, hosts: map[discovery.HostID]string{}}
}

func (l *viewList) names() []string { return slices.Sorted(maps.Values(l.hosts)) }

func (l *viewList) until(t *testing.T, what string, want func(*viewList) bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for !want(l) {
		select {
		case e, ok := <-l.v.Events():
			if !ok {
				l.closed = true
				if !want(l) {
					t.Fatalf("view closed while waiting for %s; saw %v (complete %v)", what, l.names(), l.complete)
				}
				return
			}
			switch e.Kind {
			case discovery.Show:
				l.hosts[e.ID] = e.Host.Name
			case discovery.Hide:
				delete(l.hosts, e.ID)
			case discovery.SourceFinished:
				l.finished++
			case discovery.Complete:
				l.complete = true
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s; saw %v (complete %v, closed %v)", what, l.names(), l.complete, l.closed)
		}
	}
}

func has(names ...string) func(*viewList) bool {
	return func(l *viewList) bool { return slices.Equal(l.names(), names) }
}

func completeWith(names ...string) func(*viewList) bool {
	return func(l *viewList) bool { return l.complete && slices.Equal(l.names(), names) }
}

// TestHostsOneDiscoveryManyViews: views made before, during and after the
// scan, each under its own filter, share one run of every discoverer (one
// sweep, one directory bind); a later view gets every host already known.
func TestHostsOneDiscoveryManyViews(t *testing.T) {
	release := make(chan struct{})
	nb := &countingSource{name: "nb", n: 3, release: release}
	ldap := &countingSource{name: "ldap", n: 2}
	c, err := session.New(session.Config{Discoverers: []discovery.Discoverer{nb, ldap}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	all := newViewList(c.Hosts(ctx, discovery.Filter{}))
	nbOnly := newViewList(c.Hosts(ctx, discovery.MustParseFilter("nb*")))
	all.until(t, "the hosts before the release", has("ldap1-0", "ldap1-1", "nb1-0", "nb1-1"))
	// A view made during the scan starts with what is known.
	during := newViewList(c.Hosts(ctx, discovery.MustParseFilter("*-1")))
	during.until(t, "the known hosts", has("ldap1-1", "nb1-1"))
	close(release)
	all.until(t, "the whole scan", completeWith("ldap1-0", "ldap1-1", "nb1-0", "nb1-1", "nb1-2"))
	nbOnly.until(t, "the whole scan, filtered", completeWith("nb1-0", "nb1-1", "nb1-2"))
	during.until(t, "the whole scan, filtered", completeWith("ldap1-1", "nb1-1"))
	// A page opened after the scan: every host, both sources finished,
	// Complete, and no new run.
	after := newViewList(c.Hosts(ctx, discovery.MustParseFilter("nb1-2, ldap*")))
	after.until(t, "the list after the scan", completeWith("ldap1-0", "ldap1-1", "nb1-2"))
	if after.finished != 2 {
		t.Errorf("late view got %d SourceFinished events, want 2", after.finished)
	}
	// A view whose context ends does not stop the discovery for others.
	short, stop := context.WithCancel(ctx)
	gone := newViewList(c.Hosts(short, discovery.Filter{}))
	stop()
	gone.until(t, "the view's end", func(l *viewList) bool { return l.closed })
	again := newViewList(c.Hosts(ctx, discovery.Filter{}))
	again.until(t, "the list again", completeWith("ldap1-0", "ldap1-1", "nb1-0", "nb1-1", "nb1-2"))
	if nb.runs.Load() != 1 || ldap.runs.Load() != 1 {
		t.Fatalf("for 6 views the sweep ran %d times and the directory %d, want once each", nb.runs.Load(), ldap.runs.Load())
	}
}

// TestHostsRescan: Rescan closes the views of the previous discovery,
// starts the discoverers again only once the previous run has returned,
// and new views see the new run's hosts only.
func TestHostsRescan(t *testing.T) {
	src := &countingSource{name: "nb", n: 2, endless: true, stalled: 200 * time.Millisecond}
	c, err := session.New(session.Config{Discoverers: []discovery.Discoverer{src}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	old := newViewList(c.Hosts(ctx, discovery.Filter{}))
	old.until(t, "the first run's hosts", has("nb1-0", "nb1-1"))
	if err := c.Rescan(); err != nil {
		t.Fatal(err)
	}
	// The first run is still stalled in its cancellation: the second
	// must not start beside it.
	old.until(t, "the old view's end", func(l *viewList) bool { return l.closed })
	fresh := newViewList(c.Hosts(ctx, discovery.Filter{}))
	fresh.until(t, "the second run's hosts", has("nb2-0", "nb2-1"))
	if src.overlap.Load() {
		t.Fatal("the second run started before the first returned")
	}
	if n := src.runs.Load(); n != 2 {
		t.Fatalf("%d runs after one Rescan, want 2", n)
	}
}

// TestHostsRescanStartsDiscovery: Rescan before any view starts the
// discovery, and the first view shares it.
func TestHostsRescanStartsDiscovery(t *testing.T) {
	src := &countingSource{name: "nb", n: 2}
	c, err := session.New(session.Config{Discoverers: []discovery.Discoverer{src}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Rescan(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for src.returned.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the discovery did not run before any view: %d runs, %d returned", src.runs.Load(), src.returned.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	v := newViewList(c.Hosts(context.Background(), discovery.Filter{}))
	v.until(t, "the list", completeWith("nb1-0", "nb1-1"))
	if n := src.runs.Load(); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
}

// TestHostsCloseStopsDiscovery: Close cancels the discoverers and closes
// the views; Shutdown returns only once the discoverers have returned;
// after either, Hosts returns an ended view and Rescan fails; no
// goroutine of the discovery or its views is left.
func TestHostsCloseStopsDiscovery(t *testing.T) {
	for _, how := range []string{"Close", "Shutdown"} {
		t.Run(how, func(t *testing.T) {
			base := runtime.NumGoroutine()
			src := &countingSource{name: "nb", n: 1, endless: true, stalled: 50 * time.Millisecond}
			c, err := session.New(session.Config{Discoverers: []discovery.Discoverer{src}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			v := newViewList(c.Hosts(ctx, discovery.Filter{}))
			v.until(t, "the host", has("nb1-0"))
			if how == "Close" {
				c.Close()
			} else {
				sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				defer cancel()
				if err := c.Shutdown(sctx); err != nil {
					t.Fatal(err)
				}
				if src.returned.Load() != 1 {
					t.Fatal("Shutdown returned before the discoverer")
				}
			}
			v.until(t, "the view's end", func(l *viewList) bool { return l.closed })
			deadline := time.Now().Add(15 * time.Second)
			for src.returned.Load() != 1 {
				if time.Now().After(deadline) {
					t.Fatal("the discoverer was not stopped")
				}
				time.Sleep(5 * time.Millisecond)
			}
			late := newViewList(c.Hosts(ctx, discovery.Filter{}))
			late.until(t, "a closed client's view to end", func(l *viewList) bool { return l.closed })
			if l := late.names(); len(l) != 0 || late.complete {
				t.Fatalf("a closed client's view showed %v (complete %v)", l, late.complete)
			}
			if err := c.Rescan(); err != session.ErrClientClosed {
				t.Fatalf("Rescan after %s: %v", how, err)
			}
			if src.runs.Load() != 1 {
				t.Fatalf("%d runs", src.runs.Load())
			}
			// Nothing of the discovery or its views is left running.
			deadline = time.Now().Add(15 * time.Second)
			for runtime.NumGoroutine() > base {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<20)
					t.Fatalf("%d goroutines, %d before the Client:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
