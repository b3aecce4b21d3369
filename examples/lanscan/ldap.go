package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
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
			fs.StringVar(&dns, "ldap-dns", "", "resolve the DC and the computers through the DNS server at `ADDR` (default: the system resolver)")
			fs.StringVar(&bind, "ldap-bind", "auto", "bind `METHOD`: simple (needs -ldap URL), ntlm, or auto (simple with -ldap URL and a password, NTLM with -ldap-domain or an NT hash)")
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
			default:
				return nil, fmt.Errorf("-ldap-bind %q: want simple, ntlm or auto", bind)
			}
			if d.Bind == adauth.BindSimple && url == "" && user != "" {
				// A spoofed SRV answer would get the clear password.
				return nil, fmt.Errorf("-ldap-bind simple needs the DC's -ldap URL (a DC found through -ldap-domain gets NTLM): %w", adauth.ErrSimpleBindLocated)
			}
			if dns != "" {
				r, err := dnsResolver(dns)
				if err != nil {
					return nil, err
				}
				d.Resolver = r
			}
			if user == "" {
				if pwStdin {
					return nil, errors.New("-password-stdin needs -user")
				}
				return []discovery.Discoverer{d}, nil
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
			return []discovery.Discoverer{d}, nil
		},
	}
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
