package smbprobe

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

var update = flag.Bool("update", false, "capture test vectors from the lab into testdata/")

// TestLabProbe probes the lab /24 (targets, the DC and empty addresses)
// and checks every host against what the lab says it is.
func TestLabProbe(t *testing.T) {
	lab := testlab.New(t, testlab.Options{
		Targets: []testlab.TargetSpec{{}, {Variant: testlab.SigningMandatory}, {NoSMB: true}},
		DC:      &testlab.DCSpec{},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var mu sync.Mutex
	var captured [][]byte
	d := &Discoverer{
		Targets:     []discovery.AddrRange{{From: lab.Prefix.Masked().Addr().Next(), To: lastAddr(lab.Prefix)}},
		Prober:      Prober{Timeout: 5 * time.Second},
		Concurrency: 64,
		Rate:        2000,
	}
	d.Prober.trace = func(m []byte) { mu.Lock(); captured = append(captured, append([]byte(nil), m...)); mu.Unlock() }
	out := make(chan discovery.Host, 16)
	errc := make(chan error, 1)
	go func() { errc <- d.Discover(ctx, out); close(out) }()
	found := map[netip.Addr]discovery.Host{}
	for h := range out {
		if len(h.Addrs) != 1 {
			t.Fatalf("host with %d addresses", len(h.Addrs))
		}
		if _, dup := found[h.Addrs[0]]; dup {
			t.Fatalf("%s reported twice", h.Addrs[0])
		}
		found[h.Addrs[0]] = h
	}
	if err := <-errc; err != nil {
		t.Fatalf("Discover: %v", err)
	}
	for _, tg := range lab.Targets {
		h, ok := found[tg.Addr]
		if tg.NoSMB {
			if ok {
				t.Errorf("%s has no SMB but was reported: %+v", tg.Addr, h)
			}
			continue
		}
		if !ok {
			t.Errorf("target %s (%s) not found", tg.NetBIOSName, tg.Addr)
			continue
		}
		if !strings.EqualFold(h.Name, tg.NetBIOSName) {
			t.Errorf("%s: name %q, want %q", tg.Addr, h.Name, tg.NetBIOSName)
		}
		wantSign := tg.Variant == testlab.SigningMandatory
		if h.SigningRequired == nil || *h.SigningRequired != wantSign {
			t.Errorf("%s: signing required %v, want %v", tg.NetBIOSName, h.SigningRequired, wantSign)
		}
		if h.Dialect == "" || h.OSVersion == "" || h.Sources[0] != discovery.SourceSMB {
			t.Errorf("%s: incomplete host %+v", tg.NetBIOSName, h)
		}
		t.Logf("target %s: %s dialect %s os %q %s signing %v", tg.Addr, h.Name, h.Dialect, h.OS, h.OSVersion, *h.SigningRequired)
	}
	dc, ok := found[lab.DC.Addr]
	if !ok {
		t.Fatalf("DC %s not found", lab.DC.Addr)
	}
	if !strings.EqualFold(dc.Domain, lab.DC.Domain) {
		t.Errorf("DC domain %q, want %q", dc.Domain, lab.DC.Domain)
	}
	if !strings.EqualFold(dc.DNSName, lab.DC.Hostname) {
		t.Errorf("DC DNS name %q, want %q", dc.DNSName, lab.DC.Hostname)
	}
	if dc.SigningRequired == nil || !*dc.SigningRequired {
		t.Errorf("a DC requires signing; got %v", dc.SigningRequired)
	}
	t.Logf("DC %s: %s domain %s dns %s os %s", dc.Addrs[0], dc.Name, dc.Domain, dc.DNSName, dc.OSVersion)
	if want := len(lab.Targets) - 1 + 1; len(found) != want {
		t.Errorf("found %d hosts, want %d", len(found), want)
	}
	if *update {
		n := map[string]int{}
		for _, m := range captured {
			name := "negotiate"
			if m[12] == cmdSessionSetup {
				name = "session_setup"
			}
			n[name]++
			f := filepath.Join("testdata", fmt.Sprintf("samba_%s_%d.bin", name, n[name]))
			if err := os.WriteFile(f, m, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := bits; i < 32; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(a).Prev() // not the broadcast address
}

// TestSilentPeerSkippedWithinDeadline: a peer that accepts TCP and never
// answers is skipped, within the probe deadline.
func TestSilentPeerSkippedWithinDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // hold it open, say nothing
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	p := Prober{Port: port, Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err = p.Probe(context.Background(), netip.MustParseAddr("127.0.0.1"))
	if err == nil {
		t.Fatal("silent peer gave no error")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %v with a 300ms deadline", el)
	}
	// Through the discoverer: no host, no error.
	d := &Discoverer{Targets: []discovery.AddrRange{{From: netip.MustParseAddr("127.0.0.1"), To: netip.MustParseAddr("127.0.0.1")}}, Prober: p}
	out := make(chan discovery.Host, 1)
	if err := d.Discover(context.Background(), out); err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if len(out) != 0 {
		t.Fatalf("silent peer reported: %+v", <-out)
	}
}
