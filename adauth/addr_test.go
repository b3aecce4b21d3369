package adauth

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/lanconnect/lanconnect/discovery"
)

func TestAddrOfPrefersTrusted(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	for _, c := range []struct {
		h    discovery.Host
		want string
	}{
		{discovery.Host{Name: "HERON", Addrs: []netip.Addr{a("10.0.0.66"), a("10.0.0.5")}, TrustedAddrs: []netip.Addr{a("10.0.0.5")}}, "10.0.0.5"},
		{discovery.Host{Name: "HERON", Addrs: []netip.Addr{a("10.0.0.66")}}, "10.0.0.66"},
		{discovery.Host{Name: "HERON", DNSName: "heron.lab.example"}, "heron.lab.example"},
		{discovery.Host{Name: "HERON"}, "HERON"},
		{discovery.Host{}, ""},
	} {
		if got := AddrOf(c.h); got != c.want {
			t.Errorf("AddrOf(%+v) = %q, want %q", c.h, got, c.want)
		}
	}
	// Every trusted address, in order, and no untrusted one beside them.
	h := discovery.Host{Name: "HERON", Addrs: []netip.Addr{a("10.0.0.66"), a("10.0.0.5"), a("10.0.1.5")}, TrustedAddrs: []netip.Addr{a("10.0.0.5"), a("10.0.1.5")}}
	if got := AddrsOf(h); !slices.Equal(got, []string{"10.0.0.5", "10.0.1.5"}) {
		t.Errorf("AddrsOf = %q", got)
	}
	if got := AddrsOf(discovery.Host{Addrs: []netip.Addr{a("10.0.0.66"), a("10.0.0.67")}}); !slices.Equal(got, []string{"10.0.0.66"}) {
		t.Errorf("AddrsOf untrusted = %q", got)
	}
}
