package testlab

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"strings"
)

// usedPrefixes collects every IPv4 route destination and address that the
// machine knows in the root namespace and in every named namespace, the
// nameservers of resolv.conf, and the prefixes of recorded labs. Default
// routes are left out: they would cover everything.
func usedPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	var out []netip.Prefix
	add := func(argv ...string) error {
		s, err := run(ctx, nil, nil, argv...)
		if err != nil {
			return err
		}
		out = append(out, parsePrefixes(s)...)
		return nil
	}
	if err := add("ip", "-4", "-o", "addr", "show"); err != nil {
		return nil, err
	}
	if err := add("ip", "-4", "route", "show", "table", "all"); err != nil {
		return nil, err
	}
	nss, _ := run(ctx, nil, nil, "ip", "netns", "list")
	for _, l := range strings.Split(nss, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		// A namespace may vanish meanwhile; ignore errors.
		_ = add("ip", "-n", f[0], "-4", "-o", "addr", "show")
		_ = add("ip", "-n", f[0], "-4", "route", "show", "table", "all")
	}
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		out = append(out, parsePrefixes(string(b))...)
	}
	labs, _ := Labs()
	for _, s := range labs {
		if p, err := netip.ParsePrefix(s.Prefix); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// parsePrefixes finds every IPv4 address or prefix in text, except
// 0.0.0.0/0.
func parsePrefixes(text string) []netip.Prefix {
	var out []netip.Prefix
	for _, w := range strings.FieldsFunc(text, func(r rune) bool {
		return !(r == '.' || r == '/' || (r >= '0' && r <= '9'))
	}) {
		if p, err := netip.ParsePrefix(w); err == nil && p.Addr().Is4() {
			if p.Bits() > 0 {
				out = append(out, p.Masked())
			}
			continue
		}
		if a, err := netip.ParseAddr(w); err == nil && a.Is4() && !a.IsUnspecified() {
			out = append(out, netip.PrefixFrom(a, 32))
		}
	}
	return out
}

// chooseSubnet picks a random /24 in 10.16.0.0-10.254.255.0 that overlaps
// nothing in used.
func chooseSubnet(used []netip.Prefix) (netip.Prefix, error) {
	for range 500 {
		a, _ := rand.Int(rand.Reader, big.NewInt(239))
		b, _ := rand.Int(rand.Reader, big.NewInt(256))
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(16 + a.Int64()), byte(b.Int64()), 0}), 24)
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, ErrNoFreeSubnet
}

// hostAddr returns the address .n in p.
func hostAddr(p netip.Prefix, n byte) netip.Addr {
	a := p.Addr().As4()
	a[3] = n
	return netip.AddrFrom4(a)
}

// createBridge creates the lab bridge with the host's address on it.
func (l *Lab) createBridge(ctx context.Context) error {
	batch := fmt.Sprintf("link add %s type bridge\n"+
		"addr add %s/24 dev %s\n"+
		"link set %s up\n", l.Bridge, l.HostAddr, l.Bridge, l.Bridge)
	_, err := run(ctx, []byte(batch), nil, "ip", "-batch", "-")
	if err == nil {
		// No IPv6 on lab links: nothing in the lab uses it, and it keeps
		// the bridge quiet.
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+l.Bridge+"/disable_ipv6", []byte("1"), 0o644)
	}
	return err
}

// createNetns creates namespace ns with a veth pair whose host end (host)
// is on the bridge and whose other end, eth0 in ns, has addr.
func (l *Lab) createNetns(ctx context.Context, ns, host string, addr netip.Addr) error {
	batch := fmt.Sprintf("netns add %[1]s\n"+
		"link add %[2]s type veth peer name eth0 netns %[1]s\n"+
		"link set %[2]s master %[3]s up\n", ns, host, l.Bridge)
	_, err := run(ctx, []byte(batch), nil, "ip", "-batch", "-")
	if err == nil {
		inner := fmt.Sprintf("addr add %s/24 dev eth0\nlink set lo up\nlink set eth0 up\n", addr)
		_, err = run(ctx, []byte(inner), nil, "ip", "-n", ns, "-batch", "-")
	}
	if err == nil {
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+host+"/disable_ipv6", []byte("1"), 0o644)
		_, _ = run(ctx, nil, nil, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
	}
	return err
}
