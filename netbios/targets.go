package netbios

import (
	"iter"
	"net/netip"
	"strings"

	"github.com/lanconnect/lanconnect/discovery"
)

// Targets is what a Scanner asks: address ranges to sweep with node status
// requests, and broadcast addresses to send name queries to. The zero
// Targets is empty.
type Targets struct {
	// Ranges are swept in order, one node status request per address.
	// Only IPv4 addresses are used.
	Ranges []discovery.AddrRange
	// Broadcast are IPv4 broadcast addresses (one per interface, such as
	// 192.168.1.255) for broadcast name queries.
	Broadcast []netip.Addr
	// Subnets are the networks that broadcast answers may come from,
	// besides Ranges (LocalTargets sets each interface's whole subnet).
	// When empty, each broadcast address stands for the widest subnet
	// whose broadcast address it is, by its trailing one bits
	// (10.20.255.255: 10.20.0.0/16; 192.168.1.255: 192.168.0.0/23, which
	// holds the /24; the limited broadcast 255.255.255.255 stands for
	// none). A broadcast
	// answer from anywhere else is ignored: anyone can answer a broadcast,
	// and the scanner must not be steered into probing other networks.
	Subnets []netip.Prefix
}

// answerScope returns the prefixes broadcast answers may come from, besides
// Ranges: Subnets, or what the broadcast addresses imply.
func (t Targets) answerScope() []netip.Prefix {
	if len(t.Subnets) > 0 {
		return t.Subnets
	}
	var ps []netip.Prefix
	for _, b := range t.Broadcast {
		if b = b.Unmap(); !b.Is4() {
			continue
		}
		v := b.As4()
		n := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
		ones := 0 // trailing one bits: the host part of the widest subnet
		for ones < 32 && n&(1<<ones) != 0 {
			ones++
		}
		if ones == 0 || ones == 32 {
			continue // not a directed broadcast address
		}
		ps = append(ps, netip.PrefixFrom(b, 32-ones).Masked())
	}
	return ps
}

// ParseTargets parses targets as lanscan takes them: an IPv4 address, a
// CIDR ("10.0.0.0/24") or a range ("10.0.0.5-10.0.0.40"). For a CIDR of
// /30 or wider, the network and broadcast addresses are left out. Errors
// match discovery.ErrBadRange; IPv6 is refused, as NetBIOS is IPv4 only.
func ParseTargets(args ...string) (Targets, error) {
	var t Targets
	for _, s := range args {
		r, err := discovery.ParseAddrRange(s)
		if err != nil {
			return Targets{}, err
		}
		if !r.From.Is4() {
			return Targets{}, &discovery.AddrRangeError{Input: s, Reason: "the NetBIOS name service is IPv4 only"}
		}
		if strings.Contains(s, "/") && r.Size() >= 4 {
			r.From, r.To = r.From.Next(), r.To.Prev()
		}
		t.Ranges = append(t.Ranges, r)
	}
	return t, nil
}

// Size returns the number of unicast addresses to sweep (overlaps counted
// twice).
func (t Targets) Size() uint64 {
	var n uint64
	for _, r := range t.Ranges {
		n += r.Size()
	}
	return n
}

// All yields the IPv4 addresses of every range in order, lazily.
func (t Targets) All() iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		for _, r := range t.Ranges {
			if !r.From.Is4() {
				continue
			}
			for a := range r.All() {
				if !yield(a) {
					return
				}
			}
		}
	}
}
