package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/discovery"
)

// ldapFlags are lanscan's directory flags. The console binds with its own
// credentials (-user), which in a domain are usually the technician's
// domain account.
type ldapFlags struct {
	url, domain, base, caFile, serverName, dns, bind string
	includeDisabled                                  bool
}

func (l *ldapFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.url, "ldap", "", "also read computers from the AD domain controller at `URL` (ldaps://host, or ldap://host for StartTLS), binding as -user")
	fs.StringVar(&l.domain, "ldap-domain", "", "locate a domain controller of DNS `DOMAIN` through its SRV records (instead of -ldap)")
	fs.StringVar(&l.base, "ldap-base", "", "search below `DN` only (default: the whole domain)")
	fs.StringVar(&l.caFile, "ldap-ca", "", "verify the DC's certificate against the CAs in PEM `FILE` (default: the system pool)")
	fs.StringVar(&l.serverName, "ldap-server-name", "", "the `NAME` the DC's certificate must be valid for (default: the host of -ldap)")
	fs.StringVar(&l.dns, "ldap-dns", "", "resolve the DC and the computers through the DNS server at `ADDR` (default: the system resolver)")
	fs.StringVar(&l.bind, "ldap-bind", "auto", "bind `METHOD`: simple (needs -ldap URL), ntlm, or auto (simple with -ldap URL and a password, NTLM with -ldap-domain or an NT hash)")
	fs.BoolVar(&l.includeDisabled, "ldap-include-disabled", false, "also list disabled computer accounts")
}

// build returns the directory discoverer, or nil when no DC is given.
func (l *ldapFlags) build(creds adauth.Credentials) (discovery.Discoverer, error) {
	if l.url == "" && l.domain == "" {
		if l.base != "" || l.caFile != "" || l.serverName != "" || l.dns != "" || l.includeDisabled {
			return nil, errors.New("the -ldap-* flags need -ldap URL or -ldap-domain DOMAIN")
		}
		return nil, nil
	}
	d := &adauth.Directory{
		URL: l.url, Domain: l.domain, BaseDN: l.base, CAFile: l.caFile, ServerName: l.serverName,
		IncludeDisabled: l.includeDisabled, Credentials: creds,
	}
	switch strings.ToLower(l.bind) {
	case "auto", "":
		d.Bind = adauth.BindAuto
	case "simple":
		d.Bind = adauth.BindSimple
	case "ntlm":
		d.Bind = adauth.BindNTLM
	default:
		return nil, fmt.Errorf("-ldap-bind %q: want simple, ntlm or auto", l.bind)
	}
	if d.Bind == adauth.BindSimple && l.url == "" && !creds.IsZero() {
		// A spoofed SRV answer would get the clear password.
		return nil, fmt.Errorf("-ldap-bind simple needs the DC's -ldap URL (a DC found through -ldap-domain gets NTLM): %w", adauth.ErrSimpleBindLocated)
	}
	if l.dns != "" {
		addr := l.dns
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(strings.Trim(addr, "[]"), "53")
		}
		d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, network, addr)
		}}
	}
	return discovery.Named("ldap", d), nil
}
