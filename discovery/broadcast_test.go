package discovery

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// countingFeed is a feed that counts its Discover calls: what a console
// pays per sweep or directory bind.
type countingFeed struct {
	*feed
	calls atomic.Int32
}

func (c *countingFeed) Discover(ctx context.Context, out chan<- Host) error {
	c.calls.Add(1)
	return c.feed.Discover(ctx, out)
}

// viewList applies a view's events to a list until Complete, and returns
// the names shown, sorted, and how many SourceFinished events it saw.
func viewList(t *testing.T, v *View) ([]string, int) {
	t.Helper()
	list := map[HostID]string{}
	finished := 0
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-v.Events():
			if !ok {
				t.Fatalf("view closed before Complete; list %v", list)
			}
			switch e.Kind {
			case Show:
				list[e.ID] = e.Host.Name
			case Hide:
				delete(list, e.ID)
			case SourceFinished:
				finished++
			case Complete:
				return slices.Sorted(maps.Values(list)), finished
			}
		case <-timeout:
			t.Fatalf("no Complete within 10s; list %v", list)
		}
	}
}

// TestBroadcasterOneDiscoveryManyViews: views made before the scan, during
// it (after a merge that removes a host) and after it all end with the same
// list, each under its own filter, while the discoverers ran once.
func TestBroadcasterOneDiscoveryManyViews(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	netbios, ldap := &countingFeed{feed: newFeed(nil)}, &countingFeed{feed: newFeed(nil)}
	b := NewBroadcaster(ctx, Merge(ctx, Named("netbios", netbios), Named("ldap", ldap)))

	const early = 8
	var views []*View
	for range early {
		views = append(views, b.NewView(ctx, Filter{}))
	}
	narrow := b.NewView(ctx, MustParseFilter("pc-*"))
	netbios.hosts <- Host{Name: "PC-01", Addrs: []netip.Addr{addr("10.0.0.1")}}
	ldap.hosts <- Host{DNSName: "pc-01.heron.lab", Addrs: []netip.Addr{addr("10.0.0.9")}}
	// This links the two above: the younger one is removed.
	ldap.hosts <- Host{Name: "PC-01", DNSName: "pc-01.heron.lab", Addrs: []netip.Addr{addr("10.0.0.1")}}
	close(ldap.hosts)
	for i := range 5 {
		netbios.hosts <- Host{Name: fmt.Sprintf("SRV-%d", i), Addrs: []netip.Addr{addr(fmt.Sprintf("10.0.1.%d", i))}}
	}
	mid := b.NewView(ctx, Filter{})
	netbios.hosts <- Host{Name: "PC-02", Addrs: []netip.Addr{addr("10.0.0.2")}}
	close(netbios.hosts)

	want := []string{"PC-01", "PC-02", "SRV-0", "SRV-1", "SRV-2", "SRV-3", "SRV-4"}
	for i, v := range append(views, mid) {
		got, finished := viewList(t, v)
		if !slices.Equal(got, want) || finished != 2 {
			t.Fatalf("view %d: list %v, %d sources finished; want %v and 2", i, got, finished, want)
		}
	}
	if got, _ := viewList(t, narrow); !slices.Equal(got, []string{"PC-01", "PC-02"}) {
		t.Fatalf("filtered view: %v", got)
	}
	// After the scan: seeded with everything, then Complete.
	late := b.NewView(ctx, Filter{})
	if got, finished := viewList(t, late); !slices.Equal(got, want) || finished != 2 {
		t.Fatalf("late view: %v, %d finished", got, finished)
	}
	if n, m := netbios.calls.Load(), ldap.calls.Load(); n != 1 || m != 1 {
		t.Fatalf("discoverers ran %d and %d times, want once each", n, m)
	}
}

// TestBroadcasterStalledViewDoesNotBlock: a view nobody reads does not
// hold back the stream or the other views, and one whose context ends is
// dropped.
func TestBroadcasterStalledViewDoesNotBlock(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newFeed(nil)
	b := NewBroadcaster(ctx, Merge(ctx, Named("fake", src)))
	stalled := b.NewView(ctx, Filter{}) // never read until the end
	gone, leave := context.WithCancel(ctx)
	b.NewView(gone, Filter{})
	leave()
	reader := b.NewView(ctx, Filter{})
	for i := range 200 {
		src.hosts <- Host{Name: fmt.Sprintf("H%03d", i), Addrs: []netip.Addr{addr(fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))}}
	}
	close(src.hosts)
	if got, _ := viewList(t, reader); len(got) != 200 {
		t.Fatalf("reader saw %d hosts, want 200", len(got))
	}
	if got, _ := viewList(t, stalled); len(got) != 200 {
		t.Fatalf("stalled view saw %d hosts, want 200", len(got))
	}
}

// TestBroadcasterZero: the zero value's views complete with nothing.
func TestBroadcasterZero(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var b Broadcaster
	if got, finished := viewList(t, b.NewView(ctx, Filter{})); len(got) != 0 || finished != 0 {
		t.Fatalf("zero Broadcaster view: %v, %d", got, finished)
	}
}
