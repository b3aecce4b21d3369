package krb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/oiweiwei/go-msrpc/ssp/krb5"
	"github.com/oiweiwei/gokrb5.fork/v9/config"
)

// KDCSource says where a KDC address came from.
type KDCSource string

// The KDC sources, in the order Locate tries them (after an explicit
// Config.KDC, which wins over all).
const (
	FromExplicit KDCSource = "explicit"  // Config.KDC (the -kdc flag)
	FromKRB5Conf KDCSource = "krb5.conf" // Config.KRB5Conf, [realms] REALM kdc
	FromDNSSRV   KDCSource = "dns-srv"   // _kerberos._tcp.REALM
	FromDC       KDCSource = "dc"        // Config.DC, the DC given for LDAP
)

// KDCs is the result of Locate: the addresses (ip:port) to try in order,
// and where they came from.
type KDCs struct {
	Realm  string
	Addrs  []string
	Source KDCSource
}

// Locate finds the KDCs of realm: Config.KDC when set; otherwise the
// realm's kdc lines in Config.KRB5Conf when given; then the DNS SRV
// records _kerberos._tcp.REALM (through Config.Resolver); then
// Config.DC. Names are resolved to addresses here, through the same
// resolver, so the Kerberos library never uses the system resolver. It
// fails with ErrNoKDC (an *Error saying what was tried) when every source
// is empty. It does not contact the KDCs.
func (c *Cache) Locate(ctx context.Context, realm string) (KDCs, error) {
	realm = strings.ToUpper(realm)
	var tried []string
	try := func(src KDCSource, hosts []string) (KDCs, bool) {
		addrs := c.resolveAll(ctx, hosts)
		if len(addrs) == 0 {
			tried = append(tried, fmt.Sprintf("%s: %v", src, hosts))
			return KDCs{}, false
		}
		return KDCs{Realm: realm, Addrs: addrs, Source: src}, true
	}
	if c.cfg.KDC != "" {
		if k, ok := try(FromExplicit, []string{c.cfg.KDC}); ok {
			return k, nil
		}
		return KDCs{}, &Error{Op: "locate KDC", Principal: realm, Kind: ErrNoKDC, Err: fmt.Errorf("the explicit KDC %q does not resolve", c.cfg.KDC)}
	}
	if c.cfg.KRB5Conf != "" {
		conf, err := c.krb5conf()
		if err != nil {
			return KDCs{}, err
		}
		for _, r := range conf.Realms {
			if strings.EqualFold(r.Realm, realm) && len(r.KDC) > 0 {
				if k, ok := try(FromKRB5Conf, r.KDC); ok {
					return k, nil
				}
			}
		}
		if len(tried) == 0 {
			tried = append(tried, "krb5.conf: no kdc for "+realm)
		}
	}
	_, srvs, err := c.resolver().LookupSRV(ctx, "kerberos", "tcp", realm)
	if err == nil && len(srvs) > 0 {
		// LookupSRV sorts by priority and randomises by weight.
		var hosts []string
		for _, s := range srvs {
			hosts = append(hosts, net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
		}
		if k, ok := try(FromDNSSRV, hosts); ok {
			return k, nil
		}
	} else {
		tried = append(tried, fmt.Sprintf("dns-srv: _kerberos._tcp.%s: %v", realm, err))
	}
	if ctx.Err() != nil {
		return KDCs{}, ctx.Err()
	}
	if c.cfg.DC != "" {
		if k, ok := try(FromDC, []string{c.cfg.DC}); ok {
			return k, nil
		}
	}
	return KDCs{}, &Error{Op: "locate KDC", Principal: realm, Kind: ErrNoKDC, Err: errors.New(strings.Join(tried, "; "))}
}

func (c *Cache) resolver() *net.Resolver {
	if c.cfg.Resolver != nil {
		return c.cfg.Resolver
	}
	return net.DefaultResolver
}

// resolveAll turns host or host:port entries into ip:port (port 88 when
// missing), in order, without duplicates; entries that do not resolve
// are skipped.
func (c *Cache) resolveAll(ctx context.Context, hosts []string) []string {
	var out []string
	for _, h := range hosts {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = strings.Trim(h, "[]"), "88"
		}
		var ips []string
		if a, err := netip.ParseAddr(host); err == nil {
			ips = []string{a.String()}
		} else {
			addrs, err := c.resolver().LookupHost(ctx, host)
			if err != nil {
				continue
			}
			ips = addrs
		}
		for _, ip := range ips {
			ap := net.JoinHostPort(ip, port)
			if !slices.Contains(out, ap) {
				out = append(out, ap)
			}
		}
	}
	return out
}

// krb5conf loads Config.KRB5Conf once.
func (c *Cache) krb5conf() (*config.Config, error) {
	c.confOnce.Do(func() {
		conf, err := config.Load(c.cfg.KRB5Conf)
		if err != nil {
			c.confErr = fmt.Errorf("%w: krb5.conf %s: %v", ErrBadInput, c.cfg.KRB5Conf, err)
			return
		}
		c.conf = krb5.ParsedLibDefaults(conf)
	})
	return c.conf, c.confErr
}

// clientConfig returns the Kerberos library configuration for one realm
// and its located KDCs: the library defaults of Config.KRB5Conf when
// given (encryption types, ticket lifetime), never DNS lookups of its own,
// always TCP, and the realm's KDCs as Locate found them.
func (c *Cache) clientConfig(k KDCs) (*config.Config, error) {
	conf := config.New()
	if c.cfg.KRB5Conf != "" {
		base, err := c.krb5conf()
		if err != nil {
			return nil, err
		}
		cp := *base
		conf = &cp
		conf.Realms = nil
	}
	ld := &conf.LibDefaults
	ld.DefaultRealm = k.Realm
	ld.DNSLookupKDC = false
	ld.DNSLookupRealm = false
	ld.UDPPreferenceLimit = 1 // TCP: PACs do not fit in UDP
	ld.NoAddresses = true
	if len(c.cfg.Etypes) > 0 {
		ld.DefaultTktEnctypeIDs = slices.Clone(c.cfg.Etypes)
		ld.DefaultTGSEnctypeIDs = slices.Clone(c.cfg.Etypes)
		ld.PermittedEnctypeIDs = slices.Clone(c.cfg.Etypes)
	}
	conf.Realms = []config.Realm{{Realm: k.Realm, KDC: slices.Clone(k.Addrs), DefaultDomain: strings.ToLower(k.Realm)}}
	conf.DomainRealm = config.DomainRealm{"." + strings.ToLower(k.Realm): k.Realm, strings.ToLower(k.Realm): k.Realm}
	return conf, nil
}

// RealmOf returns the Kerberos realm of the computer fqdn: the longest
// parent DNS domain of fqdn that has _kerberos._tcp SRV records (through
// Config.Resolver), upper-cased, as a domain member finds its realm. The
// console needs it when the user typed DOMAIN\user with a NetBIOS domain.
// It fails with ErrNeedsDNSName for an IP address or a short name, and
// with ErrNoKDC when no parent domain has the records. It does not check
// that the NetBIOS domain belongs to that realm.
func (c *Cache) RealmOf(ctx context.Context, fqdn string) (string, error) {
	if _, err := SPN(Host, fqdn); err != nil {
		return "", err
	}
	labels := strings.Split(strings.ToLower(strings.TrimSuffix(fqdn, ".")), ".")
	var tried []string
	// Parent domains of two labels or more, longest first: a realm is
	// never a top-level domain.
	for i := 1; i <= len(labels)-2; i++ {
		cand := strings.Join(labels[i:], ".")
		_, srvs, err := c.resolver().LookupSRV(ctx, "kerberos", "tcp", cand)
		if err == nil && len(srvs) > 0 {
			return strings.ToUpper(cand), nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		tried = append(tried, cand)
	}
	return "", &Error{Op: "find realm", Principal: fqdn, Kind: ErrNoKDC, Err: fmt.Errorf("no _kerberos._tcp SRV records in %s", strings.Join(tried, ", "))}
}
