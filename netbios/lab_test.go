package netbios_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/netbios"
)

// labBroadcast returns the broadcast address of the lab /24.
func labBroadcast(l *testlab.Lab) netip.Addr {
	r, _ := discovery.ParseAddrRange(l.Prefix.Masked().String())
	return r.To
}

func wantTarget(t *testing.T, l *testlab.Lab, byAddr map[netip.Addr]netbios.Result) {
	t.Helper()
	for _, tg := range l.Targets {
		r, ok := byAddr[tg.Addr]
		if !ok {
			t.Errorf("target %s at %v not found", tg.NetBIOSName, tg.Addr)
			continue
		}
		if !strings.EqualFold(r.Name, tg.NetBIOSName) || !strings.EqualFold(r.Domain, l.Workgroup) {
			t.Errorf("target at %v: name %q domain %q, want %q %q", tg.Addr, r.Name, r.Domain, tg.NetBIOSName, l.Workgroup)
		}
		for _, role := range []discovery.Role{discovery.RoleWorkstation, discovery.RoleFileServer, discovery.RoleMessenger, discovery.RoleBrowserElection} {
			if !slices.Contains(r.Roles, role) {
				t.Errorf("target %s roles %v lack %s", tg.NetBIOSName, r.Roles, role)
			}
		}
	}
}

func TestLabSweep(t *testing.T) {
	checkLeaks(t)
	l := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {}, {NoSMB: true}}})
	targets, err := netbios.ParseTargets(l.Prefix.String())
	if err != nil {
		t.Fatal(err)
	}
	var last netbios.Progress
	r := runScan(context.Background(), &netbios.Scanner{Progress: func(p netbios.Progress) { last = p }}, targets)
	if r.err != nil {
		t.Fatal(r.err)
	}
	byAddr := map[netip.Addr]netbios.Result{}
	for _, res := range r.results {
		byAddr[res.Addr] = res
	}
	wantTarget(t, l, byAddr)
	if len(r.results) != len(l.Targets) {
		t.Errorf("%d answers, want %d: %+v", len(r.results), len(l.Targets), r.results)
	}
	t.Logf("swept %v in %v, first answer after %v, %d packets", l.Prefix, r.elapsed, r.first, last.Sent)
	// The absent addresses get no retry: ARP has not resolved them, and
	// the first request waits in the kernel for it. Only the addresses
	// without a neighbour entry (this machine's own) are asked again.
	if !last.Done || last.Sent < last.Total || last.Sent > last.Total+8 {
		t.Errorf("%d packets for %d addresses (final progress %+v): want no retry to the absent addresses", last.Sent, last.Total, last)
	}

	// The client against the real nmbd: node status and unicast query.
	tg := l.Targets[0]
	var c netbios.Client
	ctx := context.Background()
	body, err := c.NodeStatus(ctx, tg.Addr)
	if err != nil || !strings.EqualFold(netbios.Identify(body.Names).Name, tg.NetBIOSName) {
		t.Errorf("NodeStatus(%v) = %+v, %v", tg.Addr, body, err)
	}
	es, err := c.Query(ctx, netbios.MustName(tg.NetBIOSName, netbios.SuffixFileServer), tg.Addr)
	if err != nil || len(es) != 1 || es[0].Addr != tg.Addr {
		t.Errorf("Query(%s<20>) = %+v, %v", tg.NetBIOSName, es, err)
	}
	if *netbios.Update {
		captureVectors(t, l)
	}
}

// captureVectors writes real nmbd answers to testdata/nmbd for the codec
// tests and the fuzzer (go test -run TestLabSweep -update).
func captureVectors(t *testing.T, l *testlab.Lab) {
	tg := l.Targets[0]
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(tg.Addr, 137))
	exchange := func(file string, m *netbios.Message) {
		b, _ := m.Pack()
		c.WriteToUDP(b, dst)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1500)
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("capture %s: %v", file, err)
		}
		os.MkdirAll(filepath.Join("testdata", "nmbd"), 0o755)
		if err := os.WriteFile(filepath.Join("testdata", "nmbd", file), buf[:n], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exchange("nbstat-response.bin", netbios.NewNodeStatusRequest(0x1111, netbios.WildcardName()))
	exchange("query-positive.bin", netbios.NewNameQueryRequest(0x2222, netbios.MustName(tg.NetBIOSName, 0x20), false))
	// nmbd does not answer a unicast query for a name it does not own
	// (only WINS servers send negative responses): nothing to capture.
	meta := fmt.Sprintf("name=%s\nworkgroup=%s\naddr=%s\n", tg.NetBIOSName, l.Workgroup, tg.Addr)
	os.WriteFile(filepath.Join("testdata", "nmbd", "capture.txt"), []byte(meta), 0o644)
}

// helperEnv runs TestBroadcastHelper inside a lab namespace: the test
// binary re-executes itself there.
const helperEnv = "LANCONNECT_NETBIOS_BROADCAST_HELPER"

// TestBroadcastHelper is not a test on its own: inside a lab client
// namespace it scans by broadcast only and prints each result as JSON.
func TestBroadcastHelper(t *testing.T) {
	bcast := os.Getenv(helperEnv)
	if bcast == "" {
		t.Skip("helper for TestLabBroadcast")
	}
	out := make(chan netbios.Result)
	errc := make(chan error, 1)
	go func() {
		errc <- (&netbios.Scanner{}).Scan(context.Background(), netbios.Targets{Broadcast: []netip.Addr{netip.MustParseAddr(bcast)}}, out)
	}()
	for {
		select {
		case r := <-out:
			b, _ := json.Marshal(r)
			fmt.Println("RESULT " + string(b))
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			return
		}
	}
}

func TestLabBroadcast(t *testing.T) {
	l := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {}, {NoSMB: true}}, Client: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := l.Client.Command(ctx, os.Args[0], "-test.run=^TestBroadcastHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+labBroadcast(l).String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	byAddr := map[netip.Addr]netbios.Result{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "RESULT ")
		if !ok {
			continue
		}
		var r netbios.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if !r.ViaBroadcast {
			t.Errorf("result not via broadcast: %+v", r)
		}
		byAddr[r.Addr] = r
	}
	wantTarget(t, l, byAddr)
	if t.Failed() {
		t.Logf("helper output:\n%s", out)
	}
}

func TestLabFilterMidScanAndTargetGone(t *testing.T) {
	checkLeaks(t)
	l := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {}, {}, {}}})
	// Sort targets by address: the sweep reaches them in that order.
	tgs := slices.Clone(l.Targets)
	slices.SortFunc(tgs, func(a, b *testlab.Target) int { return a.Addr.Compare(b.Addr) })
	first, keep, gone := tgs[0], tgs[2], tgs[3]
	targets, _ := netbios.ParseTargets(l.Prefix.String())
	// A slow sweep (about 2.5 s), so that the filter and the failure land
	// while it runs.
	d := &netbios.Discoverer{Scanner: &netbios.Scanner{Rate: 100}, Targets: targets}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v := discovery.NewView(ctx, discovery.Merge(ctx, d), discovery.Filter{})
	shown := map[discovery.HostID]string{}
	var afterFilter []string
	filtered := false
	for e := range v.Events() {
		switch e.Kind {
		case discovery.Show:
			shown[e.ID] = e.Host.Name
			if filtered {
				afterFilter = append(afterFilter, e.Host.Name)
			}
		case discovery.Hide:
			delete(shown, e.ID)
		case discovery.SourceFinished:
			if e.Err != nil {
				t.Fatalf("source failed: %v", e.Err)
			}
		}
		if !filtered && e.Kind == discovery.Show {
			if !strings.EqualFold(e.Host.Name, first.NetBIOSName) {
				t.Fatalf("first host %s, want the lowest address %s", e.Host.Name, first.NetBIOSName)
			}
			if err := gone.StopNmbd(); err != nil {
				t.Error(err)
			}
			v.SetFilter(discovery.MustParseFilter(strings.ToLower(keep.NetBIOSName)))
			filtered = true
		}
	}
	if len(shown) != 1 {
		t.Fatalf("after the scan the list has %v, want only %s", shown, keep.NetBIOSName)
	}
	for _, n := range shown {
		if !strings.EqualFold(n, keep.NetBIOSName) {
			t.Fatalf("list has %s, want %s", n, keep.NetBIOSName)
		}
	}
	for _, n := range afterFilter {
		if !strings.EqualFold(n, keep.NetBIOSName) {
			t.Fatalf("after the filter, %s was shown", n)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("scan did not finish")
	}
}
