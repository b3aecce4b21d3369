package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/cliutil"
)

// passwordEnv is the environment variable lanscan reads the directory
// password from (unless -password-stdin is given).
const passwordEnv = "LANCONNECT_PASSWORD"

// ldapSource reads the computers of an Active Directory domain from a
// domain controller (adauth.Directory). It is enabled by -ldap URL or
// -ldap-domain DOMAIN.
func ldapSource() *source {
	var (
		dir                           cliutil.DirectoryFlags
		domain, base, user, bind, dns string
		pwStdin, includeDisabled      bool
	)
	return &source{
		name: "ldap",
		flags: func(fs *flag.FlagSet) {
			dir.Register(fs, "also read computers from")
			fs.StringVar(&domain, "ldap-domain", "", "locate a domain controller of DNS `DOMAIN` through its SRV records (instead of -ldap)")
			fs.StringVar(&base, "ldap-base", "", "search below `DN` only (default: the whole domain)")
			fs.StringVar(&dns, "ldap-dns", "", "resolve the DC and the computers through the DNS server at `ADDR` (host or host:port), or \"dc\" for the DC of -ldap URL (default: the system resolver)")
			fs.StringVar(&bind, "ldap-bind", "auto", "bind `METHOD`: simple (needs -ldap URL), ntlm, kerberos (SASL GSSAPI over TLS; the DC by DNS name), or auto (Kerberos with -ldap-dns and a domain account, else simple with -ldap URL and a password, NTLM with -ldap-domain or an NT hash)")
			fs.BoolVar(&includeDisabled, "ldap-include-disabled", false, "also list disabled computer accounts")
			fs.StringVar(&user, "user", "", "bind to the directory as `DOMAIN\\user` (or user@domain); the password comes from $"+passwordEnv+" or -password-stdin")
			fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")
		},
		build: func(cfg *config) ([]discovery.Discoverer, error) {
			url := dir.URL
			if url == "" && domain == "" {
				if base != "" || dir.Set() || includeDisabled || dns != "" || user != "" || pwStdin {
					return nil, errors.New("the -ldap-* flags, -user and -password-stdin need -ldap URL or -ldap-domain DOMAIN")
				}
				return nil, nil
			}
			d := dir.Directory(adauth.Credentials{})
			d.Domain, d.BaseDN, d.IncludeDisabled = domain, base, includeDisabled
			d.LAPS = true // the NDJSON "laps" field
			switch strings.ToLower(bind) {
			case "auto", "":
				d.Bind = adauth.BindAuto
			case "simple":
				d.Bind = adauth.BindSimple
			case "ntlm":
				d.Bind = adauth.BindNTLM
			case "kerberos":
				d.Bind = adauth.BindKerberos
				if user == "" {
					return nil, errors.New("-ldap-bind kerberos needs -user (DOMAIN\\user or user@REALM)")
				}
			default:
				return nil, fmt.Errorf("-ldap-bind %q: want simple, ntlm, kerberos or auto", bind)
			}
			if d.Bind == adauth.BindSimple && url == "" && user != "" {
				// A spoofed SRV answer would get the clear password.
				return nil, fmt.Errorf("-ldap-bind simple needs the DC's -ldap URL (a DC found through -ldap-domain gets NTLM): %w", adauth.ErrSimpleBindLocated)
			}
			if strings.EqualFold(dns, "dc") {
				// An Active Directory DC serves its domain's DNS.
				if url == "" {
					return nil, errors.New("-ldap-dns dc needs the DC's -ldap URL (a DC found through -ldap-domain is found through DNS)")
				}
				u, err := neturl.Parse(url)
				if err != nil || u.Hostname() == "" {
					return nil, fmt.Errorf("-ldap-dns dc: -ldap %q names no host", url)
				}
				dns = u.Hostname()
			}
			var kdns *net.Resolver
			if dns != "" {
				r, err := dnsResolver(dns)
				if err != nil {
					return nil, err
				}
				d.Resolver, kdns = r, r
			}
			// Kerberos: asked for, or under auto when the domain's DNS is
			// given (the KDC and the realm are found there; the system
			// resolver is not asked about the domain). The KDC is found
			// through DNS SRV records, else it is the DC of -ldap.
			if d.Bind == adauth.BindKerberos || (d.Bind == adauth.BindAuto && user != "" && kdns != nil) {
				kc := adauth.KerberosConfig{Resolver: kdns}
				if u, err := neturl.Parse(url); err == nil && url != "" {
					kc.DC = u.Hostname()
				}
				k, err := adauth.NewKerberos(kc)
				if err != nil {
					return nil, err
				}
				cfg.own(k) // lanscan closes it when the run ends
				d.Kerberos = k
			}
			if user == "" {
				if pwStdin {
					return nil, errors.New("-password-stdin needs -user")
				}
				return []discovery.Discoverer{cfg.countDirectory(d)}, nil
			}
			pw, err := readPassword(pwStdin, cfg)
			if err != nil {
				return nil, err
			}
			c, err := adauth.Parse(user, pw)
			if err != nil {
				return nil, fmt.Errorf("-user: %w", err)
			}
			d.Credentials = c
			return []discovery.Discoverer{cfg.countDirectory(d)}, nil
		},
	}
}

// countedDirectory is an adauth.Directory whose hosts lanscan counts, to
// say at the end how many DNS names did not resolve. The directory sends
// each computer first without an address, then again with its addresses
// once its dNSHostName resolved; it never resolves one twice.
type countedDirectory struct {
	*adauth.Directory
	listed   atomic.Int64 // computers listed
	named    atomic.Int64 // of which with a DNS name to resolve
	resolved atomic.Int64 // snapshots with addresses
	ran      atomic.Bool
	failed   atomic.Bool
}

func (cfg *config) countDirectory(d *adauth.Directory) *countedDirectory {
	c := &countedDirectory{Directory: d}
	cfg.directories = append(cfg.directories, c)
	return c
}

// Discover runs the directory's Discover and counts what passes.
func (c *countedDirectory) Discover(ctx context.Context, out chan<- discovery.Host) error {
	c.ran.Store(true)
	in := make(chan discovery.Host)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Directory.Discover(ctx, in)
		close(in)
	}()
	for h := range in {
		if len(h.Addrs) > 0 {
			c.resolved.Add(1)
		} else {
			c.listed.Add(1)
			if h.DNSName != "" {
				c.named.Add(1)
			}
		}
		if ctx.Err() != nil {
			continue // Discover returns soon; let it
		}
		select {
		case out <- h:
		case <-ctx.Done():
		}
	}
	err := <-errc
	c.failed.Store(err != nil)
	return err
}

// summary is the line lanscan prints on stderr once the directory has
// been read: how many DNS names did not resolve.
func (c *countedDirectory) summary() string {
	listed, named, resolved := c.listed.Load(), c.named.Load(), c.resolved.Load()
	s := fmt.Sprintf("lanscan: ldap: %d computers listed, %d of %d DNS names did not resolve", listed, named-resolved, named)
	if n := listed - named; n > 0 {
		s += fmt.Sprintf(", %d without a DNS name", n)
	}
	return s
}

// summaries are the closing lines of the sources that ran.
func summaries(cfg *config) []string {
	var out []string
	for _, d := range cfg.directories {
		if d.ran.Load() && (!d.failed.Load() || d.listed.Load() > 0) {
			out = append(out, d.summary())
		}
	}
	return out
}

// readPassword takes the password from standard input (-password-stdin),
// from $LANCONNECT_PASSWORD, or by prompting when standard input is a
// terminal. It never echoes the password.
func readPassword(fromStdin bool, cfg *config) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("-password-stdin: no password on standard input")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	if pw, ok := os.LookupEnv(passwordEnv); ok {
		return pw, nil
	}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		fmt.Fprint(cfg.stderr, "directory password: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cfg.stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("-user needs a password: set $%s or use -password-stdin", passwordEnv)
}

// dnsResolver returns a resolver that sends every query to the DNS server
// at addr (host or host:port, port 53 by default).
func dnsResolver(addr string) (*net.Resolver, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "53")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("-ldap-dns %q: %v", addr, err)
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}, nil
}

// setDirectoryJSON fills the NDJSON fields that only the directory knows.
func setDirectoryJSON(j *hostJSON, h discovery.Host) {
	j.DN = h.DN
	j.Enabled = h.Enabled
	j.LAPS = h.LAPS
	if !h.LastLogon.IsZero() {
		j.LastLogon = h.LastLogon.UTC().Format(time.RFC3339)
	}
}
