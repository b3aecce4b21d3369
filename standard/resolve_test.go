package standard_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/netbios"
	"github.com/lanconnect/lanconnect/netbios/nbnstest"
	"github.com/lanconnect/lanconnect/standard"
)

// fakeDNS answers A queries whose first label is in records (any domain
// the system's search list appends), and NXDOMAIN otherwise, over the
// stream connections that its Resolver's Dial hands out. It counts the
// queries.
type fakeDNS struct {
	records map[string][]netip.Addr // lower-case first label
	queries atomic.Int32
}

func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, s := net.Pipe()
		go d.serve(s)
		return c, nil
	}}
}

func (d *fakeDNS) serve(c net.Conn) {
	defer c.Close()
	for {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, q); err != nil || len(q) < 12 {
			return
		}
		d.queries.Add(1)
		// The question: labels, then type and class.
		i, first := 12, ""
		for i < len(q) && q[i] != 0 {
			n := int(q[i])
			if first == "" && i+1+n <= len(q) {
				first = strings.ToLower(string(q[i+1 : i+1+n]))
			}
			i += 1 + n
		}
		if i+5 > len(q) {
			return
		}
		qtype := binary.BigEndian.Uint16(q[i+1:])
		question := q[12 : i+5]
		var answers [][]byte
		for _, a := range d.records[first] {
			if qtype == 1 && a.Is4() {
				rr := []byte{0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4}
				answers = append(answers, append(rr, a.AsSlice()...))
			}
		}
		flags := uint16(0x8180)
		if _, ok := d.records[first]; !ok {
			flags |= 3 // NXDOMAIN
		}
		resp := binary.BigEndian.AppendUint16(nil, binary.BigEndian.Uint16(q))
		resp = binary.BigEndian.AppendUint16(resp, flags)
		resp = binary.BigEndian.AppendUint16(resp, 1)
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(answers)))
		resp = append(resp, 0, 0, 0, 0)
		resp = append(resp, question...)
		for _, a := range answers {
			resp = append(resp, a...)
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// nbnsNet starts fake NetBIOS hosts named names[i] at 127.0.0.(2+i), and a
// broadcast relay at 127.0.0.1, and returns a Resolver's NetBIOS part.
func nbnsNet(t *testing.T, names ...string) (*nbnstest.Net, standard.Resolver) {
	t.Helper()
	var hosts []*nbnstest.Node
	for i, n := range names {
		hosts = append(hosts, nbnstest.Workstation(netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}), n, "LAB"))
	}
	n, err := nbnstest.Start(hosts, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	r := standard.Resolver{Broadcasts: []netip.Addr{n.Bcast}}
	r.NetBIOS = &netbios.Client{Port: n.Port, Timeout: 500 * time.Millisecond}
	return n, r
}

func TestResolverDNSFirst(t *testing.T) {
	dns := &fakeDNS{records: map[string][]netip.Addr{"lcreal": {netip.MustParseAddr("10.0.0.10")}}}
	// A NetBIOS responder claims the name too, at another address: DNS
	// answered, so it is never asked.
	_, r := nbnsNet(t, "LCREAL")
	r.DNS = dns.resolver()
	res, err := r.Resolve(context.Background(), "lcreal")
	if err != nil || res.Source != discovery.SourceDNS || !slices.Equal(res.Addrs, []netip.Addr{netip.MustParseAddr("10.0.0.10")}) {
		t.Fatalf("Resolve = %+v, %v; want DNS's 10.0.0.10 only", res, err)
	}
	if dns.queries.Load() == 0 {
		t.Fatal("DNS was not asked")
	}
}

func TestResolverNetBIOSWhenDNSHasNoAnswer(t *testing.T) {
	dns := &fakeDNS{records: map[string][]netip.Addr{}}
	_, r := nbnsNet(t, "LCREAL", "OTHER")
	r.DNS = dns.resolver()
	res, err := r.Resolve(context.Background(), "lcreal")
	if err != nil || res.Source != discovery.SourceNetBIOS || !slices.Equal(res.Addrs, []netip.Addr{netip.MustParseAddr("127.0.0.2")}) {
		t.Fatalf("Resolve = %+v, %v; want NetBIOS's 127.0.0.2", res, err)
	}
	if dns.queries.Load() == 0 {
		t.Fatal("DNS was not asked first")
	}
	// A dotted name is not a NetBIOS name: nothing answers.
	res, _ = r.Resolve(context.Background(), "lcreal.lab.example")
	if len(res.Addrs) != 0 {
		t.Fatalf("dotted name resolved over NetBIOS: %+v", res)
	}
}

func TestResolverReportsEveryResponder(t *testing.T) {
	_, r := nbnsNet(t, "LCREAL", "LCREAL")
	r.NoDNS = true
	res, err := r.Resolve(context.Background(), "LCREAL")
	want := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	slices.SortFunc(res.Addrs, netip.Addr.Compare)
	if err != nil || res.Source != discovery.SourceNetBIOS || !slices.Equal(res.Addrs, want) {
		t.Fatalf("Resolve = %+v, %v; want both responders %v", res, err, want)
	}
}
