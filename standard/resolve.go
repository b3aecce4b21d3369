package standard

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/netbios"
	"github.com/lanconnect/lanconnect/session"
)

// DefaultNetBIOSTimeout is how long Resolver listens for answers to its
// broadcast name query on each subnet.
const DefaultNetBIOSTimeout = 1500 * time.Millisecond

// Resolver is the standard session.Resolver. It asks DNS first (IPv4
// addresses; IPv6 only when there is no IPv4 one), and makes a NetBIOS
// broadcast name query (NAME<00>) on the local subnets only when DNS has
// no answer, because any host on the LAN can answer a broadcast. It
// returns every distinct address that answered: for NetBIOS the answers'
// source addresses and the addresses they name, so that two responders,
// or one naming another host's address, make more than one, which the
// session treats as a name conflict.
//
// The zero value uses the system's DNS resolver, a netbios.Client with
// DefaultNetBIOSTimeout, and the broadcast addresses of this machine's
// IPv4 interfaces. It caches nothing and is safe for concurrent use. It
// does not query WINS or LLMNR, and does not resolve IP literals (the
// session does not ask it to).
type Resolver struct {
	// DNS looks names up; nil means net.DefaultResolver.
	DNS *net.Resolver
	// NoDNS skips DNS (tests of the NetBIOS path).
	NoDNS bool
	// NetBIOS sends the broadcast queries; nil means a netbios.Client
	// with DefaultNetBIOSTimeout.
	NetBIOS *netbios.Client
	// Broadcasts are the addresses the NetBIOS query is sent to; nil
	// means those of the up, broadcast-capable IPv4 interfaces
	// (BroadcastAddrs). An empty, non-nil slice disables NetBIOS.
	Broadcasts []netip.Addr
	// Logger receives one debug line per lookup; nil discards.
	Logger *slog.Logger
}

var _ session.Resolver = (*Resolver)(nil)

// Resolve returns the addresses that answer for name: DNS's, or when DNS
// has none, NetBIOS's. A name longer than 15 characters or with a dot is
// not a NetBIOS name and is looked up in DNS only. Nothing answering is
// an empty Resolution and the last lookup error.
func (r *Resolver) Resolve(ctx context.Context, name string) (session.Resolution, error) {
	if r == nil {
		r = &Resolver{}
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	var dnsErr error
	if !r.NoDNS {
		dns := r.DNS
		if dns == nil {
			dns = net.DefaultResolver
		}
		for _, network := range []string{"ip4", "ip6"} {
			ips, err := dns.LookupNetIP(ctx, network, name)
			log.Debug("dns lookup", "name", name, "network", network, "addrs", ips, "err", err)
			if ctx.Err() != nil {
				return session.Resolution{}, ctx.Err()
			}
			if len(ips) > 0 {
				return session.Resolution{Addrs: unmapAll(ips), Source: discovery.SourceDNS}, nil
			}
			dnsErr = err
		}
	}
	if len(name) > 15 || strings.Contains(name, ".") {
		return session.Resolution{Source: discovery.SourceDNS}, dnsErr
	}
	n, err := netbios.NewName(strings.ToUpper(name), netbios.SuffixWorkstation)
	if err != nil {
		return session.Resolution{Source: discovery.SourceDNS}, errors.Join(dnsErr, err)
	}
	c := r.NetBIOS
	if c == nil {
		c = &netbios.Client{Timeout: DefaultNetBIOSTimeout, Logger: r.Logger}
	}
	bcasts := r.Broadcasts
	if bcasts == nil {
		bcasts = BroadcastAddrs()
	}
	var addrs []netip.Addr
	add := func(a netip.Addr) {
		if a = a.Unmap(); a.IsValid() && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	var nbErr error
	for _, b := range bcasts {
		ans, err := c.BroadcastQuery(ctx, n, b)
		log.Debug("netbios name query", "name", name, "broadcast", b, "answers", len(ans), "err", err)
		if ctx.Err() != nil {
			return session.Resolution{}, ctx.Err()
		}
		if err != nil {
			nbErr = err
		}
		for _, an := range ans {
			add(an.From)
			for _, e := range an.Entries {
				add(e.Addr)
			}
		}
		if len(addrs) > 0 {
			break
		}
	}
	if len(addrs) == 0 {
		return session.Resolution{Source: discovery.SourceNetBIOS}, errors.Join(dnsErr, nbErr)
	}
	return session.Resolution{Addrs: addrs, Source: discovery.SourceNetBIOS}, nil
}

func unmapAll(ips []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if ip = ip.Unmap(); !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	return out
}

// BroadcastAddrs returns the IPv4 broadcast address of each up,
// broadcast-capable, non-loopback interface of this machine. It only
// reads the interface table.
func BroadcastAddrs() []netip.Addr {
	var out []netip.Addr
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagBroadcast == 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil || !p.Addr().Is4() || p.Bits() >= 31 {
				continue
			}
			b := p.Masked().Addr().As4()
			m := ^uint32(0) >> p.Bits()
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | m
			out = append(out, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}))
		}
	}
	return out
}
