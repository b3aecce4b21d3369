package netbios_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/netbios"
	"github.com/lanconnect/lanconnect/netbios/nbnstest"
)

func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// loopNet returns a random 127.x.y.0/24 so that parallel test binaries
// do not collide.
func loopNet() [3]byte {
	return [3]byte{127, byte(100 + rand.IntN(100)), byte(rand.IntN(256))}
}

func at(n [3]byte, last byte) netip.Addr { return netip.AddrFrom4([4]byte{n[0], n[1], n[2], last}) }

// startHosts starts k fake workstations at .10, .12, .14, ... in workgroup
// wg, and closes them at the end of the test.
func startHosts(t *testing.T, n [3]byte, k int, wg string, bcast bool, masters ...int) *nbnstest.Net {
	t.Helper()
	var hosts []*nbnstest.Node
	for i := range k {
		h := nbnstest.Workstation(at(n, byte(10+2*i)), fmt.Sprintf("HOST%02d", i), wg)
		h.MAC = [6]byte{0x52, 0x54, 0, 0, 0, byte(i)}
		if slices.Contains(masters, i) {
			h.MakeMasterBrowser(wg)
		}
		hosts = append(hosts, h)
	}
	var b netip.Addr
	if bcast {
		b = at(n, 255)
	}
	fn, err := nbnstest.Start(hosts, b)
	if err != nil {
		t.Skipf("cannot bind loopback listeners: %v", err)
	}
	t.Cleanup(fn.Close)
	return fn
}

type scanRun struct {
	results []netbios.Result
	err     error
	elapsed time.Duration
	first   time.Duration
}

// addrs returns the addresses that answered, sorted.
func (r scanRun) addrs() []netip.Addr {
	var got []netip.Addr
	for _, res := range r.results {
		got = append(got, res.Addr)
	}
	slices.SortFunc(got, netip.Addr.Compare)
	return got
}

func runScan(ctx context.Context, s *netbios.Scanner, targets netbios.Targets) scanRun {
	out := make(chan netbios.Result)
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- s.Scan(ctx, targets, out) }()
	var r scanRun
	for {
		select {
		case res := <-out:
			if r.results == nil {
				r.first = time.Since(start)
			}
			r.results = append(r.results, res)
		case err := <-errc:
			r.err, r.elapsed = err, time.Since(start)
			return r
		}
	}
}

func TestScanFindsEveryHost(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 20, "LABGROUP", false)
	targets, err := netbios.ParseTargets(fmt.Sprintf("%d.%d.%d.0/24", n[0], n[1], n[2]))
	if err != nil {
		t.Fatal(err)
	}
	s := &netbios.Scanner{Port: fn.Port, Rate: 5000, Timeout: 300 * time.Millisecond}
	r := runScan(context.Background(), s, targets)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.results) != 20 {
		t.Fatalf("found %d hosts, want 20", len(r.results))
	}
	seen := map[netip.Addr]bool{}
	for _, res := range r.results {
		if seen[res.Addr] {
			t.Fatalf("%v reported twice", res.Addr)
		}
		seen[res.Addr] = true
		i := int(res.Addr.As4()[3]-10) / 2
		if res.Name != fmt.Sprintf("HOST%02d", i) || res.Domain != "LABGROUP" || len(res.Names) != 5 {
			t.Errorf("%v: %+v", res.Addr, res)
		}
		wantRoles := []discovery.Role{discovery.RoleWorkstation, discovery.RoleMessenger, discovery.RoleFileServer, discovery.RoleBrowserElection}
		if !slices.Equal(res.Roles, wantRoles) {
			t.Errorf("%v roles %v", res.Addr, res.Roles)
		}
		if res.MAC.String() != fmt.Sprintf("52:54:00:00:00:%02x", i) {
			t.Errorf("%v MAC %v", res.Addr, res.MAC)
		}
		h := res.Host()
		if h.Name != res.Name || h.Addrs[0] != res.Addr || h.Sources[0] != discovery.SourceNetBIOS || h.FirstSeen.IsZero() {
			t.Errorf("Host() = %+v", h)
		}
	}
	// 254 addresses at 5000/s, then the 300 ms timeout of the last ones.
	if r.elapsed > 2*time.Second {
		t.Fatalf("scan took %v", r.elapsed)
	}
}

func TestScanStreamsAndPaces(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 1, "WG", false)
	// 100 addresses at 200 packets/s: the first host answers at once,
	// the sweep itself takes about half a second.
	targets, _ := netbios.ParseTargets(fmt.Sprintf("%d.%d.%d.10-%d.%d.%d.109", n[0], n[1], n[2], n[0], n[1], n[2]))
	s := &netbios.Scanner{Port: fn.Port, Rate: 200, Retries: -1, Timeout: 100 * time.Millisecond}
	var last netbios.Progress
	s.Progress = func(p netbios.Progress) { last = p }
	r := runScan(context.Background(), s, targets)
	if r.err != nil || len(r.results) != 1 {
		t.Fatalf("err %v, %d results", r.err, len(r.results))
	}
	if r.first > 100*time.Millisecond {
		t.Fatalf("first result after %v", r.first)
	}
	// The burst allowance is 20 ms worth (4 packets) at this rate.
	if min := time.Duration(float64(100-4) / 200 * float64(time.Second)); r.elapsed < min {
		t.Fatalf("100 packets at 200/s took only %v (< %v): not paced", r.elapsed, min)
	}
	if !last.Done || last.Sent != 100 || last.Swept != 100 || last.Total != 100 || last.Answered != 1 {
		t.Fatalf("final progress %+v", last)
	}
}

func TestScanRetriesAndMatching(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 4, "WG", false)
	fn.Nodes[0].DropFirst.Store(1) // answers the retry only
	fn.Nodes[1].WrongID.Store(true)
	fn.Nodes[2].Garbage.Store(true) // malformed packet first, then a good one
	fn.Nodes[3].Silent.Store(true)
	targets, _ := netbios.ParseTargets(fmt.Sprintf("%d.%d.%d.10-%d.%d.%d.16", n[0], n[1], n[2], n[0], n[1], n[2]))
	s := &netbios.Scanner{Port: fn.Port, Rate: 1000, Retries: 2, Timeout: 300 * time.Millisecond}
	r := runScan(context.Background(), s, targets)
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := r.addrs()
	want := []netip.Addr{fn.Nodes[0].Addr, fn.Nodes[2].Addr}
	if !slices.Equal(got, want) {
		t.Fatalf("found %v, want %v (retry and garbage-then-good)", got, want)
	}
	if q := fn.Nodes[3].Requests.Load(); q != 3 {
		t.Fatalf("silent host asked %d times, want 1 + 2 retries", q)
	}
	if q := fn.Nodes[2].Requests.Load(); q != 1 {
		t.Fatalf("answering host asked %d times", q)
	}

	// Without retries the first host is missed.
	fn.Nodes[0].DropFirst.Store(1)
	s.Retries = -1
	r = runScan(context.Background(), s, targets)
	for _, res := range r.results {
		if res.Addr == fn.Nodes[0].Addr {
			t.Fatal("found a host that dropped the only request")
		}
	}
}

func TestScanHostStopsMidScan(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 3, "WG", false)
	fn.Nodes[2].Stop() // gone before it is asked: not fatal
	targets, _ := netbios.ParseTargets(fmt.Sprintf("%d.%d.%d.10-%d.%d.%d.14", n[0], n[1], n[2], n[0], n[1], n[2]))
	r := runScan(context.Background(), &netbios.Scanner{Port: fn.Port, Timeout: 200 * time.Millisecond}, targets)
	if r.err != nil || len(r.results) != 2 {
		t.Fatalf("err %v, %d results", r.err, len(r.results))
	}
}

func TestScanCancelStopsAtOnce(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 1, "WG", false)
	// A /16 at 100 packets/s would take 11 minutes.
	targets, _ := netbios.ParseTargets(fmt.Sprintf("%d.%d.%d.10-%d.%d.255.255", n[0], n[1], n[2], n[0], n[1]))
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan netbios.Result)
	errc := make(chan error, 1)
	go func() { errc <- (&netbios.Scanner{Port: fn.Port, Rate: 100}).Scan(ctx, targets, out) }()
	<-out
	cancel()
	start := time.Now()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("Scan returned %v after cancel", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Scan did not return after cancel")
	}
}

func TestScanBroadcast(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 5, "LABGROUP", true, 3)
	// No sweep at all: the master browser answers __MSBROWSE__, its name
	// table gives the workgroup, and the <00> group query finds the rest.
	s := &netbios.Scanner{Port: fn.Port, Timeout: 300 * time.Millisecond}
	r := runScan(context.Background(), s, netbios.Targets{Broadcast: []netip.Addr{fn.Bcast}})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.results) != 5 {
		t.Fatalf("broadcast found %d hosts, want 5: %+v", len(r.results), r.results)
	}
	for _, res := range r.results {
		if !res.ViaBroadcast || res.Domain != "LABGROUP" {
			t.Fatalf("result %+v", res)
		}
	}
	if r.results[0].Addr != fn.Nodes[3].Addr || !slices.Contains(r.results[0].Roles, discovery.RoleMasterBrowser) {
		t.Fatalf("the master browser should come first: %+v", r.results[0])
	}
	// Broadcast and a sweep of the same addresses: each host once.
	targets, _ := netbios.ParseTargets(fmt.Sprintf("%d.%d.%d.0/24", n[0], n[1], n[2]))
	targets.Broadcast = []netip.Addr{fn.Bcast}
	r = runScan(context.Background(), s, targets)
	if r.err != nil || len(r.results) != 5 {
		t.Fatalf("err %v, %d results", r.err, len(r.results))
	}
}

func TestClient(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 2, "LABGROUP", true)
	c := &netbios.Client{Port: fn.Port, Timeout: 300 * time.Millisecond}
	ctx := context.Background()
	body, err := c.NodeStatus(ctx, fn.Nodes[1].Addr)
	if err != nil || netbios.Identify(body.Names).Name != "HOST01" {
		t.Fatalf("NodeStatus: %v %+v", err, body)
	}
	es, err := c.Query(ctx, netbios.MustName("host00", 0x20), fn.Nodes[0].Addr)
	if err != nil || len(es) != 1 || es[0].Addr != fn.Nodes[0].Addr {
		t.Fatalf("Query: %v %+v", err, es)
	}
	_, err = c.Query(ctx, netbios.MustName("nobody", 0), fn.Nodes[0].Addr)
	if !errors.Is(err, netbios.ErrNameNotFound) {
		t.Fatalf("negative Query: %v", err)
	}
	as, err := c.BroadcastQuery(ctx, netbios.MustName("labgroup", 0), fn.Bcast)
	if err != nil || len(as) != 2 {
		t.Fatalf("BroadcastQuery: %v %+v", err, as)
	}
	fn.Nodes[1].WrongID.Store(true)
	if _, err := c.NodeStatus(ctx, fn.Nodes[1].Addr); !errors.Is(err, netbios.ErrTimeout) {
		t.Fatalf("answer with the wrong transaction ID accepted: %v", err)
	}
	fn.Nodes[0].Silent.Store(true)
	start := time.Now()
	if _, err := c.NodeStatus(ctx, fn.Nodes[0].Addr); !errors.Is(err, netbios.ErrTimeout) {
		t.Fatalf("silent host: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > time.Second {
		t.Fatalf("timeout took %v", d)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := (&netbios.Client{Port: fn.Port, Timeout: 5 * time.Second}).NodeStatus(cctx, fn.Nodes[0].Addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestParseTargets(t *testing.T) {
	tg, err := netbios.ParseTargets("10.0.0.0/24", "10.0.1.5-10.0.1.6", "10.0.2.1", "10.0.3.0/31")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Size() != 254+2+1+2 {
		t.Fatalf("size %d", tg.Size())
	}
	for _, bad := range []string{"::1", "10.0.0.0/33", "nope", "10.0.0.9-10.0.0.1"} {
		if _, err := netbios.ParseTargets(bad); !errors.Is(err, discovery.ErrBadRange) {
			t.Errorf("ParseTargets(%q): %v", bad, err)
		}
	}
}

func TestDiscovererThroughMergeAndView(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 6, "LABGROUP", false)
	targets, _ := netbios.ParseTargets(fmt.Sprintf("%d.%d.%d.0/24", n[0], n[1], n[2]))
	d := &netbios.Discoverer{Scanner: &netbios.Scanner{Port: fn.Port, Rate: 2000, Timeout: 200 * time.Millisecond}, Targets: targets}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := discovery.NewView(ctx, discovery.Merge(ctx, d), discovery.Filter{})
	shown := map[discovery.HostID]discovery.Host{}
	filtered := false
	for e := range v.Events() {
		switch e.Kind {
		case discovery.Show:
			if filtered && e.Host.Name != "HOST05" {
				t.Fatalf("after the filter, shown %s", e.Host.Name)
			}
			shown[e.ID] = e.Host
		case discovery.Hide:
			delete(shown, e.ID)
		case discovery.SourceFinished:
			if e.Source != "netbios" || e.Err != nil {
				t.Fatalf("source finished %+v", e)
			}
		}
		if len(shown) == 2 && !filtered {
			// Mid-scan: narrow to one host that may or may not be seen yet.
			v.SetFilter(discovery.MustParseFilter("host05"))
			filtered = true
		}
	}
	if len(shown) != 1 {
		t.Fatalf("at the end %d hosts shown, want HOST05 only: %v", len(shown), shown)
	}
	for _, h := range shown {
		if h.Name != "HOST05" || h.Domain != "LABGROUP" {
			t.Fatalf("shown %+v", h)
		}
	}
}

func TestScanRetriesAfterSweepWithoutTokens(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 8, "WG", false)
	for _, h := range fn.Nodes {
		h.Silent.Store(true)
	}
	// The sweep ends with the bucket empty while retries are due: the
	// sender must wait for tokens, not for the next deadline.
	targets, _ := netbios.ParseTargets(fmt.Sprintf("%d.%d.%d.10-%d.%d.%d.25", n[0], n[1], n[2], n[0], n[1], n[2]))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := runScan(ctx, &netbios.Scanner{Port: fn.Port, Rate: 50, Retries: 3, Timeout: 40 * time.Millisecond}, targets)
	if r.err != nil {
		t.Fatalf("scan: %v after %v", r.err, r.elapsed)
	}
	for _, h := range fn.Nodes {
		if q := h.Requests.Load(); q != 4 {
			t.Fatalf("%v asked %d times, want 4", h.Addr, q)
		}
	}
}

func TestScanMemoryFlatOnA16(t *testing.T) {
	if testing.Short() {
		t.Skip("sweeps 65,534 loopback addresses")
	}
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 2, "WG", false)
	// The whole 127.x.0.0/16 around the fakes, at a fast loopback pace.
	targets, _ := netbios.ParseTargets(fmt.Sprintf("%d.%d.0.0/16", n[0], n[1]))
	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	var peak uint64
	s := &netbios.Scanner{Port: fn.Port, Rate: 40000, Retries: -1, Timeout: 200 * time.Millisecond}
	s.Progress = func(netbios.Progress) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		peak = max(peak, m.HeapInuse)
	}
	r := runScan(context.Background(), s, targets)
	if r.err != nil || len(r.results) != 2 {
		t.Fatalf("err %v, %d results", r.err, len(r.results))
	}
	grown := int64(peak) - int64(base.HeapInuse)
	t.Logf("/16 in %v, heap in use grew by at most %d KB", r.elapsed, grown/1024)
	// In flight: about rate × timeout = 8,000 probes of ~100 bytes each.
	if grown > 8<<20 {
		t.Fatalf("heap grew by %d KB during a /16 sweep", grown/1024)
	}
}

// TestScanBroadcastScope: a node outside the scanned subnet that answers
// the broadcast gets no node status request and is not reported; with
// Targets.Subnets covering it, it is.
func TestScanBroadcastScope(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	other := [3]byte{n[0], n[1], n[2] + 1}
	inside := nbnstest.Workstation(at(n, 10), "INSIDE", "LABGROUP")
	outside := nbnstest.Workstation(at(other, 10), "OUTSIDE", "LABGROUP")
	fn, err := nbnstest.Start([]*nbnstest.Node{inside, outside}, at(n, 255))
	if err != nil {
		t.Skipf("cannot bind loopback listeners: %v", err)
	}
	t.Cleanup(fn.Close)
	var last netbios.Progress
	s := &netbios.Scanner{Port: fn.Port, Timeout: 300 * time.Millisecond, Workgroups: []string{"LABGROUP"},
		Progress: func(p netbios.Progress) { last = p }}
	r := runScan(context.Background(), s, netbios.Targets{Broadcast: []netip.Addr{fn.Bcast}})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.results) != 1 || r.results[0].Name != "INSIDE" {
		t.Fatalf("results %+v, want INSIDE only", r.results)
	}
	if n := outside.Requests.Load(); n != 0 || last.Ignored == 0 {
		t.Fatalf("the node outside the subnet got %d node status requests; %d answers ignored", n, last.Ignored)
	}
	r = runScan(context.Background(), s, netbios.Targets{Broadcast: []netip.Addr{fn.Bcast},
		Subnets: []netip.Prefix{netip.PrefixFrom(at(n, 0), 16).Masked()}})
	if r.err != nil || len(r.results) != 2 {
		t.Fatalf("with Subnets covering both: %v, %+v", r.err, r.results)
	}
}

// slowHost answers node status requests at addr after delay, by relaying
// them to a fake host (which answers at once) and sending its answer back
// from addr.
func slowHost(t *testing.T, addr netip.Addr, port uint16, relayTo netip.AddrPort, delay time.Duration) {
	t.Helper()
	ln, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port)))
	if err != nil {
		t.Skipf("cannot bind %v: %v", addr, err)
	}
	up, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := ln.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			time.Sleep(delay)
			up.WriteToUDPAddrPort(buf[:n], relayTo)
			up.SetReadDeadline(time.Now().Add(time.Second))
			if n, _, err = up.ReadFromUDPAddrPort(buf); err == nil {
				ln.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); up.Close(); <-done })
}

// TestScanAdaptiveWait: once a node has answered, an address that does
// not answer is dropped after the adapted wait (8 round trips, at least a
// quarter of Timeout), not after Timeout; a node slower than the fast
// ones but within that quarter is still found.
func TestScanAdaptiveWait(t *testing.T) {
	checkLeaks(t)
	n := loopNet()
	fn := startHosts(t, n, 2, "WG", false) // .10 and .12
	// .12 is relayed through .100, 600 ms late; .12 itself is outside
	// the range.
	slowHost(t, at(n, 100), fn.Port, netip.AddrPortFrom(fn.Nodes[1].Addr, fn.Port), 600*time.Millisecond)
	targets, _ := netbios.ParseTargets(at(n, 10).String(), fmt.Sprintf("%v-%v", at(n, 20), at(n, 219)))
	const timeout = 4 * time.Second
	s := &netbios.Scanner{Port: fn.Port, Rate: 5000, Timeout: timeout}
	r := runScan(context.Background(), s, targets)
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := r.addrs()
	if want := []netip.Addr{at(n, 10), at(n, 100)}; !slices.Equal(got, want) {
		t.Fatalf("found %v, want %v", got, want)
	}
	// 201 addresses at 5000/s take 40 ms; then the adapted wait of the
	// last ones: Timeout/4 = 1 s. Without adapting, Timeout: 4 s.
	if r.elapsed < timeout/4 || r.elapsed > 3*time.Second {
		t.Fatalf("scan took %v, want the adapted wait (about %v), never less, and well under the %v timeout", r.elapsed, timeout/4, timeout)
	}
	t.Logf("scan took %v", r.elapsed)
}
