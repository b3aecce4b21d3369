package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/netbios"
)

// resolveHosts turns each HOST argument into a discovery.Host: an IP
// address as it is; a name through a NetBIOS broadcast name query on the
// local IPv4 subnets (as discovery found it), then DNS.
func resolveHosts(ctx context.Context, args []string, log *slog.Logger) ([]discovery.Host, error) {
	var hosts []discovery.Host
	for _, a := range args {
		if ip, err := netip.ParseAddr(a); err == nil {
			hosts = append(hosts, discovery.Host{Addrs: []netip.Addr{ip.Unmap()}, Name: ip.Unmap().String()})
			continue
		}
		h, err := resolveName(ctx, a, log)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

func resolveName(ctx context.Context, name string, log *slog.Logger) (discovery.Host, error) {
	h := discovery.Host{Name: name}
	if len(name) <= 15 && !strings.Contains(name, ".") {
		if n, err := netbios.NewName(strings.ToUpper(name), netbios.SuffixWorkstation); err == nil {
			c := &netbios.Client{Timeout: 1500 * time.Millisecond}
			for _, b := range broadcastAddrs() {
				ans, err := c.BroadcastQuery(ctx, n, b)
				log.Debug("netbios name query", "name", name, "broadcast", b, "answers", len(ans), "err", err)
				for _, an := range ans {
					for _, e := range an.Entries {
						if e.Addr.IsValid() {
							h.Addrs = append(h.Addrs, e.Addr)
						}
					}
				}
				if len(h.Addrs) > 0 {
					h.Sources = []discovery.Source{discovery.SourceNetBIOS}
					return h, nil
				}
			}
		}
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	if err != nil || len(ips) == 0 {
		return h, fmt.Errorf("%s: not found by NetBIOS or DNS (%v)", name, err)
	}
	h.DNSName = name
	for _, ip := range ips {
		h.Addrs = append(h.Addrs, ip.Unmap())
	}
	return h, nil
}

// broadcastAddrs returns the IPv4 broadcast address of each up,
// broadcast-capable, non-loopback interface.
func broadcastAddrs() []netip.Addr {
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
