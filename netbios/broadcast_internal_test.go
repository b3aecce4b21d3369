package netbios

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/lanconnect/lanconnect/discovery"
)

// TestBroadcastAnswerQueue: answers to a broadcast query are queued once
// per address, only from the scanned subnets, and at most
// maxBroadcastQueue at a time; the rest are counted as ignored.
func TestBroadcastAnswerQueue(t *testing.T) {
	r, _ := discovery.ParseAddrRange("10.20.0.1-10.20.0.254")
	tg := Targets{Ranges: []discovery.AddrRange{r}, Broadcast: []netip.Addr{netip.MustParseAddr("10.20.255.255")},
		Subnets: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	sc := &scan{
		log: slog.New(slog.DiscardHandler), wake: make(chan struct{}, 1),
		byAddr: map[netip.Addr]*probe{}, byID: map[uint16]*probe{}, answered: map[netip.Addr]bool{},
		urgentAt: map[netip.Addr]bool{}, groups: map[string]bool{}, ranges: tg.Ranges, scope: tg.answerScope(),
	}
	q := &probe{addr: tg.Broadcast[0], query: &Name{}}
	m := &Message{Answers: []Resource{{Type: TypeNB, Class: ClassINET, Body: &NBBody{}}}}
	at := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 20, byte(i >> 8), byte(i)}) }

	// The same responder many times: one queued request.
	for range 1000 {
		sc.broadcastAnswer(at(7), q, m)
	}
	if len(sc.urgent) != 1 || sc.progress.Ignored != 0 {
		t.Fatalf("one responder answering 1000 times: %d queued, %d ignored", len(sc.urgent), sc.progress.Ignored)
	}
	// Outside the scanned subnets: ignored.
	for _, a := range []string{"10.21.0.5", "192.0.2.1", "127.0.0.1"} {
		sc.broadcastAnswer(netip.MustParseAddr(a), q, m)
	}
	if len(sc.urgent) != 1 || sc.progress.Ignored != 3 {
		t.Fatalf("answers from other networks: %d queued, %d ignored", len(sc.urgent), sc.progress.Ignored)
	}
	// A flood of distinct responders: bounded.
	const flood = maxBroadcastQueue + 500
	for i := range flood {
		sc.broadcastAnswer(at(256+i), q, m)
	}
	if len(sc.urgent) != maxBroadcastQueue || len(sc.urgentAt) != maxBroadcastQueue || sc.progress.Ignored != 3+flood+1-maxBroadcastQueue {
		t.Fatalf("flood of %d: %d queued (set %d), %d ignored", flood, len(sc.urgent), len(sc.urgentAt), sc.progress.Ignored)
	}
}

// TestAnswerScope: the subnets that broadcast addresses imply when
// Targets.Subnets is empty.
func TestAnswerScope(t *testing.T) {
	tg := Targets{Broadcast: []netip.Addr{
		netip.MustParseAddr("192.168.1.255"), netip.MustParseAddr("10.20.255.255"), netip.MustParseAddr("10.0.0.7"),
		netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("10.0.0.8"),
	}}
	got := tg.answerScope()
	want := []string{"192.168.0.0/23", "10.20.0.0/16", "10.0.0.0/29"} // the widest: 192.168.1.255 ends a /23 too
	if len(got) != len(want) {
		t.Fatalf("scope %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("scope %v, want %v", got, want)
		}
	}
	tg.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if s := tg.answerScope(); len(s) != 1 || s[0] != tg.Subnets[0] {
		t.Fatalf("explicit subnets: %v", s)
	}
}
