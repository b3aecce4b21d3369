package netbios

import (
	"errors"
	"net"
	"net/netip"

	"github.com/lanconnect/lanconnect/discovery"
)

// CappedSubnet reports a local subnet wider than LocalTargets sweeps.
type CappedSubnet struct {
	Interface string
	Subnet    netip.Prefix // the interface's whole subnet (its broadcast covers it)
	Swept     netip.Prefix // the part swept: the block around the interface's address
}

// ErrNoLocalSubnet is returned by LocalTargets when no interface has an
// IPv4 subnet to scan.
var ErrNoLocalSubnet = errors.New("netbios: no IPv4 interface to scan")

// LocalTargets returns what "scan my LAN" means here: the IPv4 subnet of
// every interface that is up, not loopback and able to broadcast, to be
// swept, and its broadcast address, for broadcast name queries. A subnet
// wider than /maxBits is swept only in the /maxBits block around the
// interface's address, and reported in capped. Point-to-point links, /31
// and /32 addresses are left out.
//
// LocalTargets only reads the interface table; it sends nothing. What it
// returns leads to whatever networks this machine is on: in tests, call it
// only inside a lab namespace.
func LocalTargets(maxBits int) (t Targets, capped []CappedSubnet, err error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return t, nil, err
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagBroadcast == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		capped = addSubnets(&t, ifc.Name, addrs, maxBits, capped)
	}
	if len(t.Ranges) == 0 {
		return t, nil, ErrNoLocalSubnet
	}
	return t, capped, nil
}

func addSubnets(t *Targets, ifname string, addrs []net.Addr, maxBits int, capped []CappedSubnet) []CappedSubnet {
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		ones, bits := ipn.Mask.Size()
		ip = ip.Unmap()
		if !ok || !ip.Is4() || ones == 0 || ones > 30 || (bits != 32 && bits != 128) {
			continue
		}
		if bits == 128 {
			ones -= 96
		}
		full := netip.PrefixFrom(ip, ones).Masked()
		whole, _ := discovery.ParseAddrRange(full.String())
		t.Broadcast = append(t.Broadcast, whole.To)
		t.Subnets = append(t.Subnets, full)
		swept := full
		if ones < maxBits {
			swept = netip.PrefixFrom(ip, maxBits).Masked()
			capped = append(capped, CappedSubnet{Interface: ifname, Subnet: full, Swept: swept})
		}
		r, _ := discovery.ParseAddrRange(swept.String())
		if swept.Bits() <= 30 {
			r.From, r.To = r.From.Next(), r.To.Prev()
		}
		t.Ranges = append(t.Ranges, r)
	}
	return capped
}
