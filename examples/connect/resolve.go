package main

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// hostsOf turns each HOST argument into a discovery.Host: an IP address
// as it is (no identity check: the technician chose the address); a name
// without an address, which the session resolves with its Resolver (DNS
// first, then a NetBIOS broadcast) and whose owner must answer under that
// name before credentials are sent.
func hostsOf(args []string) []discovery.Host {
	var hosts []discovery.Host
	for _, a := range args {
		if ip, err := netip.ParseAddr(a); err == nil {
			hosts = append(hosts, discovery.Host{Addrs: []netip.Addr{ip.Unmap()}, Name: ip.Unmap().String()})
			continue
		}
		h := discovery.Host{Name: a}
		if strings.Contains(a, ".") {
			h.DNSName = a
		}
		hosts = append(hosts, h)
	}
	return hosts
}

// firstAddr returns an address of h for choosing the check-in listener's
// address: its own, or the one r finds when exactly one answers (the
// session resolves again and refuses a conflict itself). It sends no
// credentials.
func firstAddr(ctx context.Context, h discovery.Host, r session.Resolver, log *slog.Logger) (netip.Addr, bool) {
	if len(h.Addrs) > 0 {
		return h.Addrs[0], true
	}
	if r == nil {
		return netip.Addr{}, false
	}
	res, err := r.Resolve(ctx, h.Name)
	if err != nil || len(res.Addrs) != 1 {
		log.Debug("no single address for the check-in listener", "host", h.Name, "addrs", res.Addrs, "err", err)
		return netip.Addr{}, false
	}
	return res.Addrs[0], true
}
