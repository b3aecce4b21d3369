package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkLeaks fails the test if goroutines started during it are still
// running when it ends (after giving them a moment to exit).
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			runtime.Gosched()
			time.Sleep(time.Millisecond)
		}
	})
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestParseAddrRange(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.5":             "10.0.0.5",
		"10.0.0.9/24":          "10.0.0.0-10.0.0.255",
		"10.0.0.5-10.0.0.40":   "10.0.0.5-10.0.0.40",
		" 10.0.0.5 - 10.0.0.5": "10.0.0.5",
		"::ffff:10.0.0.1":      "10.0.0.1",
		"fe80::/127":           "fe80::-fe80::1",
		"10.1.0.0/16":          "10.1.0.0-10.1.255.255",
	} {
		r, err := ParseAddrRange(in)
		if err != nil || r.String() != want {
			t.Errorf("ParseAddrRange(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0", "10.0.0.0/33", "10.0.0.9-10.0.0.1", "10.0.0.1-::1", "fe80::1%eth0", "host"} {
		_, err := ParseAddrRange(in)
		var e *AddrRangeError
		if !errors.Is(err, ErrBadRange) || !errors.As(err, &e) {
			t.Errorf("ParseAddrRange(%q) error %v, want ErrBadRange", in, err)
		}
	}
	r, _ := ParseAddrRange("10.0.0.254-10.0.1.1")
	var got []string
	for a := range r.All() {
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != "10.0.0.254 10.0.0.255 10.0.1.0 10.0.1.1" || r.Size() != 4 {
		t.Fatalf("All = %v, Size %d", got, r.Size())
	}
	if r, _ := ParseAddrRange("10.0.0.0/8"); r.Size() != 1<<24 || !r.Contains(addr("10.200.0.1")) || r.Contains(addr("11.0.0.0")) {
		t.Fatal("/8 size or contains wrong")
	}
}

func TestFilter(t *testing.T) {
	heron := Host{Name: "HERON-01", DNSName: "heron-01.lab.example", Addrs: []netip.Addr{addr("10.1.2.3")}}
	srv := Host{Name: "FILESRV", Addrs: []netip.Addr{addr("10.1.2.50"), addr("192.168.5.5")}}
	noname := Host{Addrs: []netip.Addr{addr("172.16.0.1")}}
	cases := []filterCase{ // want: heron, srv, noname
		{"", []bool{true, true, true}},
		{"   ", []bool{true, true, true}},
		{"heron*", []bool{true, false, false}},
		{"HER", []bool{true, false, false}},
		{"srv", []bool{false, true, false}},
		{"lab.example", []bool{true, false, false}},
		{"*.lab.example", []bool{true, false, false}},
		{"pc-0?", []bool{false, false, false}},
		{"heron-0?", []bool{true, false, false}},
		{"10.1.2.3", []bool{true, false, false}},
		{"10.1.2.0/24", []bool{true, true, false}},
		{"10.1.2.5-10.1.2.60", []bool{false, true, false}},
		{"192.168.5.5", []bool{false, true, false}},
		{"srv 10.0.0.0/8", []bool{false, true, false}},
		{"srv 172.16.0.0/12", []bool{false, false, false}},
		{"heron*, 172.16.0.1", []bool{true, false, true}},
		{"filesrv,heron", []bool{true, true, false}},
		{"[fh]*", []bool{true, true, false}},
	}
	checkFilterCases(t, []Host{heron, srv, noname}, cases)
	for _, bad := range []string{"10.1.2", "10.1.2.0/40", "10.0.0.9-10.0.0.1", "heron[", "a,,b", "1.2.3.4-x"} {
		_, err := ParseFilter(bad)
		var fe *FilterError
		if !errors.Is(err, ErrBadFilter) || !errors.As(err, &fe) || fe.Term == "" {
			t.Errorf("ParseFilter(%q) error %v, want a *FilterError", bad, err)
		}
	}
	if _, err := ParseFilter("10.1.2"); !errors.Is(err, ErrBadRange) || !strings.Contains(err.Error(), `"10.1.2"`) {
		t.Errorf("address-looking term error %v should wrap ErrBadRange and quote the term", err)
	}
	f := MustParseFilter("srv 10.0.0.0/8, heron")
	if !f.MatchAddr(addr("10.9.9.9")) || !f.MatchAddr(addr("1.1.1.1")) {
		t.Error("MatchAddr too narrow")
	}
	if f := MustParseFilter("10.0.0.0/8"); f.MatchAddr(addr("11.0.0.1")) {
		t.Error("MatchAddr too wide")
	}
}

// filterCase is an expression and whether it matches each of a list of hosts.
type filterCase struct {
	expr string
	want []bool
}

// checkFilterCases parses each case's expression and checks which of hosts
// it matches, and that String gives the expression back.
func checkFilterCases(t *testing.T, hosts []Host, cases []filterCase) {
	t.Helper()
	for _, c := range cases {
		f, err := ParseFilter(c.expr)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", c.expr, err)
			continue
		}
		got := make([]bool, len(hosts))
		for i, h := range hosts {
			got[i] = f.Match(h)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("filter %q matches %v, want %v", c.expr, got, c.want)
		}
		if f.String() != strings.TrimSpace(c.expr) {
			t.Errorf("String() = %q, want %q", f.String(), strings.TrimSpace(c.expr))
		}
	}
}

func TestFilterQualifiers(t *testing.T) {
	heron := Host{Name: "HERON-01", DNSName: "heron-01.lab.example", Domain: "LAB", OS: "Windows 11 Pro", OSVersion: "10.0 (22631)",
		Addrs: []netip.Addr{addr("10.1.2.3")}, Sources: []Source{SourceNetBIOS, SourceLDAP}}
	srv := Host{Name: "FILESRV", Domain: "WORKGROUP", OS: "Windows Server 2019 Standard", OSVersion: "10.0 (17763)",
		Addrs: []netip.Addr{addr("10.1.2.50")}, Sources: []Source{SourceNetBIOS, SourceSMB}}
	bare := Host{Addrs: []netip.Addr{addr("172.16.0.1")}, Sources: []Source{"vendor-arp"}}
	cases := []filterCase{ // want: heron, srv, bare
		// domain: substring or glob of the domain or workgroup, nothing else.
		{"domain:lab", []bool{true, false, false}},
		{"DOMAIN:Lab", []bool{true, false, false}},
		{"domain:group", []bool{false, true, false}},
		{"domain:w*", []bool{false, true, false}},
		{"domain:la?", []bool{true, false, false}},
		{"domain:heron", []bool{false, false, false}},
		{"domain:example", []bool{false, false, false}},
		{"domain:*", []bool{true, true, false}},
		// os: substring or glob of the product name or the version.
		{"os:windows", []bool{true, true, false}},
		{"os:SERVER", []bool{false, true, false}},
		{"os:windows os:11", []bool{true, false, false}},
		{"os:22631", []bool{true, false, false}},
		{"os:windows*2019*", []bool{false, true, false}},
		{"os:server*", []bool{false, false, false}},
		{"os:linux", []bool{false, false, false}},
		// source: a whole source name, or a glob.
		{"source:ldap", []bool{true, false, false}},
		{"source:NetBIOS", []bool{true, true, false}},
		{"source:smb", []bool{false, true, false}},
		{"source:dns", []bool{false, false, false}},
		{"source:net", []bool{false, false, false}},
		{"source:vendor-arp", []bool{false, false, true}},
		{"source:vendor-*", []bool{false, false, true}},
		// Free text matches the domain besides the names.
		{"lab", []bool{true, false, false}},
		{"workgroup", []bool{false, true, false}},
		{"work*", []bool{false, true, false}},
		{"heron", []bool{true, false, false}},
		// With addresses, AND and OR.
		{"domain:lab 10.1.2.0/24", []bool{true, false, false}},
		{"os:server 10.1.2.3", []bool{false, false, false}},
		{"source:ldap, 172.16.0.1", []bool{true, false, true}},
		{"domain:workgroup, source:vendor-arp", []bool{false, true, true}},
		// IPv6 terms that start with letters are still addresses.
		{"fe::1", []bool{false, false, false}},
	}
	checkFilterCases(t, []Host{heron, srv, bare}, cases)
	// Qualifier terms say nothing about addresses: MatchAddr must not
	// rule an address out for them.
	if f := MustParseFilter("domain:lab"); !f.MatchAddr(addr("192.0.2.1")) {
		t.Error("MatchAddr narrower than Match for a qualifier")
	}

	bad := []struct {
		expr, term string
		want       error
		says       string
	}{
		{"user:bob", "user:bob", ErrUnknownQualifier, `"user:"`},
		{"heron Name:x", "Name:x", ErrUnknownQualifier, "domain:, os:, source:"},
		{"http://x", "http://x", ErrUnknownQualifier, `"http:"`},
		{"os:", "os:", ErrEmptyQualifier, "os:PATTERN"},
		{"os: windows", "os:", ErrEmptyQualifier, "no space after the colon"},
		{"heron, DOMAIN:", "DOMAIN:", ErrEmptyQualifier, "domain:PATTERN"},
		{"source:", "source:", ErrEmptyQualifier, "source:PATTERN"},
		{"domain:lab[", "domain:lab[", ErrBadFilter, "malformed glob"},
		{"dc:", "dc:", ErrBadRange, ""}, // hex letters and a colon read as IPv6
	}
	for _, c := range bad {
		_, err := ParseFilter(c.expr)
		var fe *FilterError
		if !errors.Is(err, ErrBadFilter) || !errors.Is(err, c.want) || !errors.As(err, &fe) {
			t.Errorf("ParseFilter(%q) error %v, want a *FilterError matching %v", c.expr, err, c.want)
			continue
		}
		if fe.Term != c.term || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseFilter(%q) error %q (term %q), want term %q and %q", c.expr, err, fe.Term, c.term, c.says)
		}
	}
}

// feed is a Discoverer that sends hosts from a channel until it is closed,
// then returns err.
type feed struct {
	hosts chan Host
	err   error
}

func newFeed(err error) *feed { return &feed{hosts: make(chan Host), err: err} }

func (f *feed) Discover(ctx context.Context, out chan<- Host) error {
	for {
		select {
		case h, ok := <-f.hosts:
			if !ok {
				return f.err
			}
			select {
			case out <- h:
			case <-ctx.Done():
				return ctx.Err()
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func recv(t *testing.T, ch <-chan Update) Update {
	t.Helper()
	select {
	case u, ok := <-ch:
		if !ok {
			t.Fatal("stream closed early")
		}
		return u
	case <-time.After(5 * time.Second):
		t.Fatal("no update within 5s")
	}
	panic("unreachable")
}

func TestMergeEnrichesAndLinks(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nb, ldap := newFeed(nil), newFeed(errors.New("bind refused"))
	ups := Merge(ctx, Named("netbios", nb), Named("ldap", ldap))

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	nb.hosts <- Host{Addrs: []netip.Addr{addr("10.0.0.5")}, Name: "HERON", Domain: "LAB", Roles: []Role{RoleWorkstation}, Sources: []Source{SourceNetBIOS}, FirstSeen: t0.Add(time.Second), LastSeen: t0.Add(time.Second)}
	u := recv(t, ups)
	if u.Kind != HostNew || u.ID != 1 || u.Host.Name != "HERON" {
		t.Fatalf("first update %+v", u)
	}
	// LDAP knows the same computer by name and domain, in other case.
	ldap.hosts <- Host{Name: "heron", Domain: "lab", DNSName: "heron.lab.example", OS: "Windows 11 Pro", Sources: []Source{SourceLDAP}, FirstSeen: t0, LastSeen: t0}
	u = recv(t, ups)
	if u.Kind != HostChanged || u.ID != 1 || u.Host.OS != "Windows 11 Pro" || u.Host.Name != "HERON" ||
		!slices.Equal(u.Host.Sources, []Source{SourceNetBIOS, SourceLDAP}) || !u.Host.FirstSeen.Equal(t0) || !u.Host.LastSeen.Equal(t0.Add(time.Second)) {
		t.Fatalf("enriched update %+v", u)
	}
	// A host known only by DNS name, then linked by an address.
	ldap.hosts <- Host{Name: "OWL", Domain: "LAB", DNSName: "owl.lab.example", Sources: []Source{SourceLDAP}}
	if u = recv(t, ups); u.Kind != HostNew || u.ID != 2 {
		t.Fatalf("owl %+v", u)
	}
	nb.hosts <- Host{Addrs: []netip.Addr{addr("10.0.0.9")}, Sources: []Source{SourceNetBIOS}}
	if u = recv(t, ups); u.Kind != HostNew || u.ID != 3 {
		t.Fatalf("bare address %+v", u)
	}
	// Now NetBIOS names the address: OWL at 10.0.0.9. Hosts 2 and 3 are one.
	nb.hosts <- Host{Addrs: []netip.Addr{addr("10.0.0.9")}, Name: "OWL", Domain: "LAB", Sources: []Source{SourceNetBIOS}}
	got := []Update{recv(t, ups), recv(t, ups)}
	if got[0].Kind != HostChanged || got[0].ID != 2 || !slices.Equal(got[0].Host.Addrs, []netip.Addr{addr("10.0.0.9")}) ||
		got[1].Kind != HostRemoved || got[1].ID != 3 || got[1].MergedInto != 2 {
		t.Fatalf("link updates %+v", got)
	}
	// Sending the same facts again changes nothing but LastSeen, which is
	// given and equal here: no update. Then the sources end.
	close(ldap.hosts)
	u = recv(t, ups)
	var se *SourceError
	if u.Kind != SourceDone || u.Source != "ldap" || !errors.As(u.Err, &se) || se.Err.Error() != "bind refused" {
		t.Fatalf("ldap done %+v", u)
	}
	// The failed source did not stop the other.
	nb.hosts <- Host{Addrs: []netip.Addr{addr("10.0.0.77")}}
	if u = recv(t, ups); u.Kind != HostNew || u.ID != 4 {
		t.Fatalf("after failure %+v", u)
	}
	close(nb.hosts)
	if u = recv(t, ups); u.Kind != SourceDone || u.Err != nil {
		t.Fatalf("nb done %+v", u)
	}
	if _, ok := <-ups; ok {
		t.Fatal("stream not closed after all sources ended")
	}
}

func TestMergeNoChangeNoUpdate(t *testing.T) {
	checkLeaks(t)
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := Host{Name: "A", Addrs: []netip.Addr{addr("10.0.0.1")}, FirstSeen: ts, LastSeen: ts}
	d := DiscovererFunc(func(ctx context.Context, out chan<- Host) error {
		for range 3 {
			out <- h
		}
		out <- Host{OS: "Windows 11"} // no key: ignored
		return nil
	})
	var kinds []UpdateKind
	for u := range Merge(context.Background(), d) {
		kinds = append(kinds, u.Kind)
	}
	if !slices.Equal(kinds, []UpdateKind{HostNew, SourceDone}) {
		t.Fatalf("kinds %v", kinds)
	}
}

func TestMergeSlowConsumerCoalesces(t *testing.T) {
	checkLeaks(t)
	ctx := context.Background()
	const n = 1000
	d := DiscovererFunc(func(ctx context.Context, out chan<- Host) error {
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range n {
			// Ten hosts, each seen a hundred times.
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 10)})
			select {
			case out <- Host{Addrs: []netip.Addr{a}, LastSeen: base.Add(time.Duration(i) * time.Second), FirstSeen: base}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	ups := Merge(ctx, d)
	// Read nothing until the source is done: the merge must not block it.
	// Then read everything: one entry per host with its last state.
	last := map[HostID]Update{}
	for u := range ups {
		if u.Kind == HostNew && last[u.ID].Kind != 0 {
			t.Fatalf("second HostNew for %d", u.ID)
		}
		if u.ID != 0 {
			last[u.ID] = u
		}
	}
	if len(last) != 10 {
		t.Fatalf("%d hosts, want 10", len(last))
	}
	for _, u := range last {
		i := int(u.Host.Addrs[0].As4()[3])
		want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n-10+i) * time.Second)
		if !u.Host.LastSeen.Equal(want) {
			t.Fatalf("host %v last seen %v, want %v", u.Host.Addrs, u.Host.LastSeen, want)
		}
	}
}

func TestMergeCancelDoesNotDeadlock(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	endless := DiscovererFunc(func(ctx context.Context, out chan<- Host) error {
		for i := 0; ; i++ {
			select {
			case out <- Host{Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	ups := Merge(ctx, endless, endless)
	<-ups // one update, then the consumer stops reading
	cancel()
	done := make(chan struct{})
	go func() {
		for range ups {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream not closed after cancel")
	}
}

func TestViewLiveFilter(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newFeed(nil)
	v := NewView(ctx, Merge(ctx, src), MustParseFilter("heron"))
	next := func() ViewEvent {
		t.Helper()
		select {
		case e := <-v.Events():
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no view event")
		}
		panic("unreachable")
	}
	src.hosts <- Host{Name: "OWL", Addrs: []netip.Addr{addr("10.0.0.2")}}
	src.hosts <- Host{Name: "HERON", Addrs: []netip.Addr{addr("10.0.0.1")}}
	if e := next(); e.Kind != Show || e.Host.Name != "HERON" {
		t.Fatalf("first event %+v", e)
	}
	// Widen: OWL, seen before, appears.
	v.SetFilter(MustParseFilter("10.0.0.0/24"))
	if e := next(); e.Kind != Show || e.Host.Name != "OWL" {
		t.Fatalf("after widening %+v", e)
	}
	// Narrow: HERON disappears.
	v.SetFilter(MustParseFilter("owl"))
	if e := next(); e.Kind != Hide || e.Host.Name != "HERON" {
		t.Fatalf("after narrowing %+v", e)
	}
	if v.Filter().String() != "owl" {
		t.Fatalf("Filter() = %q", v.Filter())
	}
	// New hosts follow the new filter; a non-matching one says nothing.
	src.hosts <- Host{Name: "HERON2", Addrs: []netip.Addr{addr("10.0.0.3")}}
	src.hosts <- Host{Name: "OWLET", Addrs: []netip.Addr{addr("10.0.0.4")}}
	if e := next(); e.Kind != Show || e.Host.Name != "OWLET" {
		t.Fatalf("new host under filter %+v", e)
	}
	close(src.hosts)
	if e := next(); e.Kind != SourceFinished {
		t.Fatalf("want SourceFinished, got %+v", e)
	}
	if _, ok := <-v.Events(); ok {
		t.Fatal("view not closed")
	}
	v.SetFilter(Filter{}) // must not block after the end
}

func TestViewFoldsPendingEvents(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newFeed(nil)
	v := NewView(ctx, Merge(ctx, src), Filter{})
	// Nothing is read while hosts arrive, then the filter hides one of
	// them before the receiver saw it: it must never be shown.
	src.hosts <- Host{Name: "A", Addrs: []netip.Addr{addr("10.0.0.1")}}
	src.hosts <- Host{Name: "B", Addrs: []netip.Addr{addr("10.0.0.2")}}
	close(src.hosts)
	v.SetFilter(MustParseFilter("b"))
	var shown []string
	for e := range v.Events() {
		switch e.Kind {
		case Show:
			shown = append(shown, e.Host.Name)
		case Hide:
			t.Fatalf("Hide for a host never shown: %+v", e)
		}
	}
	if !slices.Equal(shown, []string{"B"}) {
		t.Fatalf("shown %v", shown)
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"heron*", "srv 10.0.0.0/8", "a,b", "10.1.2.5-10.1.2.40", "[", "10.1.2", "::1", "x-", "domain:lab", "os:win*", "source:", "a:b"} {
		f.Add(s)
	}
	h := Host{Name: "HERON", DNSName: "heron.lab", Domain: "LAB", OS: "Windows 11 Pro", Sources: []Source{SourceNetBIOS}, Addrs: []netip.Addr{addr("10.1.2.3")}}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			if !errors.Is(err, ErrBadFilter) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		flt.Match(h)
		flt.MatchAddr(h.Addrs[0])
		if flt.Match(h) && !flt.MatchAddr(h.Addrs[0]) {
			t.Fatalf("MatchAddr narrower than Match for %q", s)
		}
	})
}

func TestMergeLinkBeforeDelivery(t *testing.T) {
	m := &merger{index: map[string]HostID{}, recs: map[HostID]*record{}, pend: map[HostID]*Update{}}
	now := time.Now()
	m.apply(Host{Name: "OWL", Domain: "LAB"}, now)
	m.head = 1 // the receiver got host 1's HostNew
	delete(m.pend, 1)
	// Host 2 is found and, before its HostNew is read, linked to host 1:
	// the receiver only ever hears of host 1.
	m.apply(Host{Addrs: []netip.Addr{addr("10.0.0.9")}}, now)
	m.apply(Host{Name: "owl", Domain: "lab", Addrs: []netip.Addr{addr("10.0.0.9")}}, now)
	var got []Update
	for _, u := range m.queue[m.head:] {
		if u.Kind != 0 {
			got = append(got, *u)
		}
	}
	if len(got) != 1 || got[0].Kind != HostChanged || got[0].ID != 1 || !slices.Equal(got[0].Host.Addrs, []netip.Addr{addr("10.0.0.9")}) {
		t.Fatalf("updates %+v", got)
	}
	// Once host 3's HostNew was read, linking it gives HostChanged, then
	// HostRemoved.
	m.head = len(m.queue)
	clear(m.pend)
	m.apply(Host{Addrs: []netip.Addr{addr("10.0.0.10")}}, now)
	m.head = len(m.queue)
	clear(m.pend)
	m.apply(Host{Name: "OWL", Domain: "LAB", Addrs: []netip.Addr{addr("10.0.0.10")}}, now)
	got = got[:0]
	for _, u := range m.queue[m.head:] {
		got = append(got, *u)
	}
	if len(got) != 2 || got[0].Kind != HostChanged || got[0].ID != 1 || got[1].Kind != HostRemoved || got[1].ID != 3 || got[1].MergedInto != 1 {
		t.Fatalf("updates %+v", got)
	}
}

func TestViewConcurrentSetFilter(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newFeed(nil)
	v := NewView(ctx, Merge(ctx, src), Filter{})
	go func() {
		for range v.Events() {
		}
	}()
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			for j := range 50 {
				v.SetFilter(MustParseFilter(fmt.Sprintf("h%d-%d", i, j)))
			}
			done <- struct{}{}
		}()
	}
	for range 8 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("SetFilter calls deadlocked")
		}
	}
	v.SetFilter(MustParseFilter("final"))
	if v.Filter().String() != "final" {
		t.Fatalf("filter %q", v.Filter())
	}
	close(src.hosts)
}

// TestLiveViewOutlivesTheScan: a live view says Complete when the sources
// are done, keeps applying filter changes to the hosts seen, and ends only
// with its context.
func TestLiveViewOutlivesTheScan(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newFeed(nil)
	v := NewLiveView(ctx, Merge(ctx, src), MustParseFilter("heron"))
	next := func() ViewEvent {
		t.Helper()
		select {
		case e, ok := <-v.Events():
			if !ok {
				t.Fatal("live view closed before its context")
			}
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no view event")
		}
		panic("unreachable")
	}
	src.hosts <- Host{Name: "OWL", Addrs: []netip.Addr{addr("10.0.0.2")}}
	src.hosts <- Host{Name: "HERON", Addrs: []netip.Addr{addr("10.0.0.1")}}
	close(src.hosts)
	var kinds []ViewEventKind
	for {
		e := next()
		kinds = append(kinds, e.Kind)
		if e.Kind == Complete {
			break
		}
	}
	if !slices.Equal(kinds, []ViewEventKind{Show, SourceFinished, Complete}) {
		t.Fatalf("events before Complete: %v", kinds)
	}
	// The scan is over; the filter still works on what was seen.
	v.SetFilter(MustParseFilter("owl"))
	e1, e2 := next(), next()
	if got := map[ViewEventKind]string{e1.Kind: e1.Host.Name, e2.Kind: e2.Host.Name}; got[Show] != "OWL" || got[Hide] != "HERON" {
		t.Fatalf("after the scan, filter change gave %+v, %+v", e1, e2)
	}
	cancel()
	for range v.Events() { // closed once the context is done
	}
	v.SetFilter(Filter{}) // returns at once on an ended view
}
