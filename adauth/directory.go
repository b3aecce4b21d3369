package adauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/krb"
)

// Resolver looks up domain controllers and computer addresses. *net.Resolver
// implements it; tests and consoles inject their own (for example one that
// asks the domain's DNS server directly).
type Resolver interface {
	// LookupSRV is net.Resolver.LookupSRV: it queries
	// _service._proto.name.
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	// LookupNetIP is net.Resolver.LookupNetIP, called with network "ip".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// BindMethod selects how Directory authenticates.
type BindMethod int

const (
	// BindAuto is the zero value: an NTLM bind when the credentials carry
	// an NT hash or when the DC was located through DNS SRV records (never
	// a clear password to a DC that a spoofed DNS answer may have named), a
	// simple bind when they carry a password and URL names the DC, and no
	// bind
	// (anonymous) when the credentials are zero.
	BindAuto BindMethod = iota
	// BindSimple is an LDAP simple bind (only with an explicit URL: with a
	// DC located through DNS it is refused with ErrSimpleBindLocated) with
	// a DN, a UPN (user@domain) or
	// DOMAIN\user name and a password. It refuses NT hashes.
	BindSimple
	// BindNTLM is NTLMv2 carried in a SASL GSS-SPNEGO bind, with a password
	// or an NT hash. It is not go-ldap's NTLMBind (the Sicily protocol).
	BindNTLM
	// BindKerberos is a SASL GSSAPI (Kerberos) bind to ldap/FQDN of the
	// DC, with a ticket from Directory.Kerberos, over TLS only (LDAPS or
	// StartTLS: it negotiates no SASL security layer). The DC must be
	// named by its DNS name (URL, SRV record or ServerName). The DC proves
	// that it holds the ldap/ service's key (mutual authentication).
	BindKerberos
)

// String returns "auto", "simple", "ntlm" or "kerberos".
func (b BindMethod) String() string {
	switch b {
	case BindAuto:
		return "auto"
	case BindSimple:
		return "simple"
	case BindNTLM:
		return "ntlm"
	case BindKerberos:
		return "kerberos"
	}
	return fmt.Sprintf("BindMethod(%d)", int(b))
}

// Defaults of Directory's zero fields.
const (
	DefaultPageSize           = 1000
	DefaultResolveConcurrency = 8
	DefaultLDAPTimeout        = 30 * time.Second
	resolveQueue              = 16384
	resolveTimeout            = 5 * time.Second
	// resolveBreaker consecutive lookups that time out mean that DNS does
	// not answer: the rest of the listing's names are not looked up.
	resolveBreaker = 8
	// resolveMissBreaker consecutive names that DNS answers without an
	// address (NXDOMAIN, no record, a failure) mean that this DNS server
	// does not serve the domain's names (typically: the system resolver
	// of a machine whose DNS is not the domain's): the rest of the names
	// are not looked up. An answer with an address resets the count.
	resolveMissBreaker = 256
	// resolveAfterListing bounds how long Discover waits for address
	// lookups once the directory has been read.
	resolveAfterListing = 2 * time.Second
)

// Directory is a discovery.Discoverer that streams the computer objects of
// an Active Directory domain from a domain controller over LDAP.
//
// It connects to URL, or to a DC that it locates through the DNS SRV
// records of Domain, reads the rootDSE anonymously, upgrades to TLS, binds
// with Credentials and runs a paged search for computers under BaseDN (or
// each of OUs). Each computer is sent as a discovery.Host as soon as it
// arrives; when the computer has a dNSHostName, a second snapshot with its
// addresses follows once the Resolver answers. Memory use does not grow
// with the size of the directory.
//
// The listing never waits on DNS. Lookups run beside it; after 8 in a row
// time out (a silent server) or 256 in a row find no address (a server
// that does not know the domain's names, such as the system resolver of a
// machine outside the domain: set Resolver to the DC's DNS), the rest of
// the names are not looked up, and lookups get at most 2 s once the
// listing is read. Names left without an address are counted in the final
// log line.
//
// TLS is required unless AllowPlaintext is set: ldaps:// URLs use LDAPS,
// ldap:// URLs and DCs found through DNS use StartTLS, and the server's
// certificate is verified against the system pool, RootCAs or CAFile for
// ServerName (by default the host that was dialled).
//
// The zero value reads nothing useful (it has no DC to talk to), but every
// other field has a working default. A Directory is not modified by
// Discover and may be used by several goroutines at once. It does not
// write to the directory and does not follow referrals. It binds with
// Kerberos only with a ticket cache (Directory.Kerberos).
type Directory struct {
	// URL names the DC: "ldaps://dc1.corp.example" (LDAPS, port 636) or
	// "ldap://dc1.corp.example" (StartTLS, port 389), with an optional port.
	// When empty, the DC is located through Domain.
	URL string
	// Domain is the DNS domain ("corp.example") whose DCs are located
	// through the SRV records _ldap._tcp.dc._msdcs.<Domain>, tried in
	// priority and weight order, with StartTLS on the port the record
	// gives. It is ignored when URL is set.
	Domain string
	// Resolver answers the SRV lookup, the DC's address and the computers'
	// addresses. Nil means net.DefaultResolver.
	Resolver Resolver
	// Dial opens the TCP connection to addr ("ip:port"). Nil means a
	// net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// TLSConfig, when set, is cloned and used as the base TLS
	// configuration; RootCAs, CAFile and ServerName override its fields.
	TLSConfig *tls.Config
	// RootCAs are the authorities the server's certificate must chain to.
	// Nil means CAFile, or the system pool when CAFile is empty too.
	RootCAs *x509.CertPool
	// CAFile is a PEM file of authorities, used when RootCAs is nil.
	CAFile string
	// ServerName is the name the certificate must be valid for. Empty
	// means the host of URL or of the SRV record. Set it when dialling a
	// DC by address.
	ServerName string
	// AllowPlaintext lets an ldap:// URL (or an SRV-located DC) run without
	// TLS: no StartTLS is attempted. A simple bind then sends the password
	// in the clear; DCs usually refuse it (ErrStrongAuthRequired). Leave it
	// false outside labs.
	AllowPlaintext bool

	// Credentials are the account to bind as (adauth.Parse or
	// ParseWithHash; for a DN bind, Credentials{User: dn}.WithPassword(pw)).
	// Zero credentials mean an anonymous search, which DCs usually refuse.
	Credentials Credentials
	// Bind selects the bind method; BindAuto by default.
	Bind BindMethod
	// Kerberos is the console's ticket cache (see NewKerberos), shared
	// with its SMBAuthenticator and owned by the caller. BindKerberos
	// needs it; with it, BindAuto binds with Kerberos when the
	// credentials name a domain account (or the cache holds a ccache or
	// keytab), the DC has a DNS name, the connection is TLS and the DC
	// offers GSSAPI.
	Kerberos *Kerberos

	// BaseDN is where the search starts. Empty means the DC's
	// defaultNamingContext.
	BaseDN string
	// OUs, when not empty, replaces BaseDN with these subtrees (full DNs),
	// searched one after the other. An OU inside another listed OU is
	// skipped, so that no computer is sent twice.
	OUs []string
	// IncludeDisabled also reports disabled computer accounts (with
	// Host.Enabled false). By default only enabled accounts are reported.
	IncludeDisabled bool
	// LAPS also asks for the computers' LAPS password attributes and sets
	// Host.LAPS to the format whose password the bind account may read.
	// The values are dropped as each entry is mapped: the listing never
	// keeps, logs or returns a password.
	LAPS bool
	// NameFilter, when not empty, keeps only computers whose name matches:
	// a case-insensitive substring, or a glob when it contains '*'. It is
	// evaluated by the DC; the value is escaped, never interpreted as LDAP
	// filter syntax.
	NameFilter string
	// PageSize is the paged-results page size; DefaultPageSize when zero.
	PageSize int

	// ResolveConcurrency bounds the concurrent address lookups;
	// DefaultResolveConcurrency when zero.
	ResolveConcurrency int
	// SkipResolve turns address lookups off: hosts carry no addresses.
	SkipResolve bool
	// Timeout bounds each step of the connection set-up (dial, TLS,
	// rootDSE, bind); DefaultLDAPTimeout when zero. The search itself is
	// bounded by the context only.
	Timeout time.Duration

	// Logger receives progress and diagnostics; nil discards them.
	// Credentials never appear in the log.
	Logger *slog.Logger
}

var _ discovery.Discoverer = (*Directory)(nil)

// Name returns "ldap", the name discovery.Merge reports for this source.
func (d *Directory) Name() string { return string(discovery.SourceLDAP) }

func (d *Directory) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

func (d *Directory) resolver() Resolver {
	if d.Resolver == nil {
		return net.DefaultResolver
	}
	return d.Resolver
}

func (d *Directory) timeout() time.Duration {
	if d.Timeout <= 0 {
		return DefaultLDAPTimeout
	}
	return d.Timeout
}

func (d *Directory) pageSize() uint32 {
	if d.PageSize <= 0 {
		return DefaultPageSize
	}
	return uint32(d.PageSize)
}

// session is an established, bound connection.
type session struct {
	conn   *ldap.Conn
	dse    *rootDSE
	server string
}

// tlsConfig builds the TLS configuration for serverName.
func (d *Directory) tlsConfig(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{}
	if d.TLSConfig != nil {
		cfg = d.TLSConfig.Clone()
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if d.ServerName != "" {
		cfg.ServerName = d.ServerName
	} else if cfg.ServerName == "" {
		cfg.ServerName = serverName
	}
	switch {
	case d.RootCAs != nil:
		cfg.RootCAs = d.RootCAs
	case d.CAFile != "":
		pem, err := os.ReadFile(d.CAFile)
		if err != nil {
			return nil, opError(OpValidate, "", "reading CAFile", ErrBadConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, opError(OpValidate, "", "CAFile "+d.CAFile+" holds no PEM certificate", ErrBadConfig, nil)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// targets returns the places to try, in order.
func (d *Directory) targets(ctx context.Context) ([]target, error) {
	if d.URL != "" {
		t, err := parseLDAPURL(d.URL)
		if err != nil {
			return nil, &LDAPError{Op: OpValidate, Code: -1, Meaning: "bad URL", Err: err}
		}
		return []target{t}, nil
	}
	if d.Domain == "" {
		return nil, opError(OpLocate, "", "neither URL nor Domain is set", ErrNoDC, nil)
	}
	name := "dc._msdcs." + strings.TrimSuffix(d.Domain, ".")
	_, srvs, err := d.resolver().LookupSRV(ctx, "ldap", "tcp", name)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, opError(OpLocate, "_ldap._tcp."+name, "SRV lookup failed", ErrNoDC, err)
	}
	// net.Resolver sorts by priority and randomises by weight; a custom
	// resolver may not, so sort by priority (stable keeps its weight order).
	sort.SliceStable(srvs, func(i, j int) bool { return srvs[i].Priority < srvs[j].Priority })
	var ts []target
	for _, s := range srvs {
		host := strings.TrimSuffix(s.Target, ".")
		if host == "" || s.Port == 0 {
			continue
		}
		ts = append(ts, target{host: host, port: int(s.Port), source: "srv"})
	}
	if len(ts) == 0 {
		return nil, opError(OpLocate, "_ldap._tcp."+name, "no usable SRV record", ErrNoDC, nil)
	}
	return ts, nil
}

// connect locates a DC, sets up TLS, reads the rootDSE and binds.
func (d *Directory) connect(ctx context.Context) (*session, error) {
	if err := d.checkBind(); err != nil {
		return nil, err
	}
	ts, err := d.targets(ctx)
	if err != nil {
		return nil, err
	}
	log := d.logger()
	var lastErr error
	for _, t := range ts {
		s, err := d.connectTarget(ctx, t)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err
		var le *LDAPError
		// Only unreachable DCs are skipped; a TLS or bind failure would
		// repeat on the next DC of the same domain.
		if errors.As(err, &le) && (le.Op == OpDial || le.Op == OpLocate) {
			log.Warn("ldap: domain controller unreachable, trying the next", "dc", t.String(), "err", err)
			continue
		}
		return nil, err
	}
	return nil, lastErr
}

// checkBind validates the bind settings before any traffic.
func (d *Directory) checkBind() error {
	c := d.Credentials
	switch d.Bind {
	case BindAuto:
	case BindSimple:
		if c.NTHash() != nil {
			return opError(OpValidate, "", "a simple bind needs a password, not an NT hash", ErrBindMethod, nil)
		}
		if d.URL == "" && !c.IsZero() {
			return opError(OpValidate, "", "refusing a simple bind (clear password) to a DC located through DNS SRV records, which a host on the LAN can spoof: give the DC's URL or bind with NTLM",
				&wrapErr{sentinel: ErrSimpleBindLocated, also: ErrBindMethod}, nil)
		}
	case BindNTLM:
		if c.User == "" || !c.HasSecret() {
			return opError(OpValidate, "", "an NTLM bind needs a user and a password or NT hash", ErrBadCredentials, nil)
		}
	case BindKerberos:
		if d.Kerberos == nil {
			return opError(OpValidate, "", "a Kerberos bind needs Directory.Kerberos (a ticket cache)", ErrBadConfig, nil)
		}
		if d.AllowPlaintext {
			return opError(OpValidate, "", "a Kerberos bind negotiates no SASL security layer: it runs over TLS only, not with AllowPlaintext", ErrBindMethod, nil)
		}
		if (c.User == "" || !c.HasSecret()) && !d.Kerberos.hasSecret() {
			return opError(OpValidate, "", "a Kerberos bind needs a user and a password, or a ccache or keytab", ErrBadCredentials, nil)
		}
		return nil
	default:
		return opError(OpValidate, "", "unknown bind method "+d.Bind.String(), ErrBadConfig, nil)
	}
	if !c.IsZero() && (c.User == "" || !c.HasSecret()) {
		return opError(OpValidate, "", "credentials need both a user and a secret", ErrBadCredentials, nil)
	}
	return nil
}

func (d *Directory) connectTarget(ctx context.Context, t target) (*session, error) {
	log := d.logger()
	addrs, err := resolveTarget(ctx, d.resolver(), t.host)
	if err != nil || len(addrs) == 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil {
			err = errors.New("no addresses")
		}
		return nil, opError(OpDial, t.String(), "resolving the DC's name", nil, err)
	}
	dial := d.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	var raw net.Conn
	var server string
	for _, a := range addrs {
		server = netip.AddrPortFrom(a, uint16(t.port)).String()
		dctx, cancel := context.WithTimeout(ctx, d.timeout())
		raw, err = dial(dctx, "tcp", server)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		log.Debug("ldap: dial failed", "addr", server, "err", err)
	}
	if raw == nil {
		return nil, opError(OpDial, t.String(), "connection failed", nil, err)
	}
	ok := false
	defer func() {
		if !ok {
			raw.Close()
		}
	}()

	cfg, err := d.tlsConfig(t.host)
	if err != nil {
		return nil, err
	}
	var conn net.Conn = raw
	isTLS := false
	p := &preConn{c: raw, server: server, host: t.host, timeout: d.timeout()}
	switch {
	case t.ldaps:
		hctx, cancel := context.WithTimeout(ctx, d.timeout())
		tc, err := tlsHandshake(hctx, raw, cfg, server)
		cancel()
		if err != nil {
			return nil, netErr(ctx, err)
		}
		conn, isTLS = tc, true
	case !d.AllowPlaintext:
		r, err := p.startTLS(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, opError(OpTLS, server, "StartTLS request failed", ErrTLS, err)
		}
		if r.Code != ldapResultSuccess {
			e := resultError(OpTLS, server, r.Code, r.Diagnostic)
			e.Err = &wrapErr{sentinel: ErrPlaintextRefused, also: ErrTLS, cause: errors.New("StartTLS refused: " + e.Meaning)}
			return nil, e
		}
		hctx, cancel := context.WithTimeout(ctx, d.timeout())
		tc, err := tlsHandshake(hctx, raw, cfg, server)
		cancel()
		if err != nil {
			return nil, netErr(ctx, err)
		}
		conn, isTLS = tc, true
	default:
		log.Warn("ldap: plaintext connection (AllowPlaintext)", "dc", server)
	}
	p.c, p.isTLS = conn, isTLS

	dse, err := p.readRootDSE(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var le *LDAPError
		if !errors.As(err, &le) {
			err = opError(OpRootDSE, server, "reading the rootDSE", nil, err)
		} else if le.Op == "" { // a Notice of Disconnection
			le.Op = OpRootDSE
		}
		return nil, err
	}
	log.Debug("ldap: rootDSE", "dc", server, "dnsHostName", dse.DNSHostName,
		"defaultNamingContext", dse.DefaultNamingContext, "tls", isTLS)

	if err := d.bind(ctx, p, dse, t.source == "srv"); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	l := ldap.NewConn(conn, isTLS)
	l.Start()
	ok = true
	return &session{conn: l, dse: dse, server: server}, nil
}

// bind authenticates p as d.Credentials. located says the DC was found
// through DNS SRV records rather than named by URL.
func (d *Directory) bind(ctx context.Context, p *preConn, dse *rootDSE, located bool) error {
	c := d.Credentials
	method := d.Bind
	if method == BindAuto && d.kerberosPossible(p, dse) {
		method = BindKerberos
	}
	if method == BindAuto {
		switch {
		case c.IsZero():
			d.logger().Debug("ldap: no credentials, searching anonymously", "dc", p.server)
			return nil
		case c.NTHash() != nil:
			method = BindNTLM
		case located:
			// The DC's name came from DNS SRV records, which a host on
			// the LAN can spoof: NTLM, never a clear password.
			method = BindNTLM
		default:
			method = BindSimple
		}
	}
	if method == BindSimple && located && !c.IsZero() {
		// checkBind refuses this before any traffic; never reach it.
		return opError(OpBind, p.server, "refusing a simple bind to a DC located through DNS SRV records", &wrapErr{sentinel: ErrSimpleBindLocated, also: ErrBindMethod}, nil)
	}
	d.logger().Debug("ldap: bind", "dc", p.server, "method", method.String(), "account", c)
	switch method {
	case BindSimple:
		return p.simpleBind(ctx, c)
	case BindKerberos:
		err := d.kerberosBind(ctx, p, dse)
		if err == nil || d.Bind != BindAuto || !errors.Is(err, krb.ErrNoKDC) {
			return err
		}
		// auto: no KDC serves the domain, so Kerberos cannot work here.
		d.logger().Debug("ldap: no KDC for a Kerberos bind; auto binds without it", "dc", p.server, "err", err)
		fallback := *d
		fallback.Kerberos = nil
		return fallback.bind(ctx, p, dse, located)
	default:
		if len(dse.SASLMechanisms) > 0 && !dse.supportsSASL(saslMechGSSSPNEGO) {
			return opError(OpBind, p.server, "server does not offer SASL GSS-SPNEGO (offers "+strings.Join(dse.SASLMechanisms, ", ")+")", ErrBindMethod, nil)
		}
		return p.ntlmBind(ctx, c)
	}
}

// searchBases returns the subtrees to search, without any that lies inside
// another.
func (d *Directory) searchBases(dse *rootDSE) ([]string, error) {
	var bases []string
	switch {
	case len(d.OUs) > 0:
		bases = d.OUs
	case d.BaseDN != "":
		bases = []string{d.BaseDN}
	case dse.DefaultNamingContext != "":
		bases = []string{dse.DefaultNamingContext}
	default:
		return nil, opError(OpValidate, "", "no BaseDN and the DC announces no defaultNamingContext", ErrBadConfig, nil)
	}
	parsed := make([]*ldap.DN, len(bases))
	for i, b := range bases {
		dn, err := ldap.ParseDN(b)
		if err != nil || len(dn.RDNs) == 0 {
			return nil, opError(OpValidate, "", fmt.Sprintf("base DN %q is not a DN", b), ErrBadConfig, err)
		}
		parsed[i] = dn
	}
	var out []string
	for i, dn := range parsed {
		inside := false
		for j, other := range parsed {
			if i == j {
				continue
			}
			if other.AncestorOfFold(dn) || (other.EqualFold(dn) && j < i) {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, bases[i])
		}
	}
	return out, nil
}

// dnsDomainOf turns DC=corp,DC=example into corp.example.
func dnsDomainOf(dn string) string {
	p, err := ldap.ParseDN(dn)
	if err != nil {
		return ""
	}
	var parts []string
	for _, r := range p.RDNs {
		for _, a := range r.Attributes {
			if strings.EqualFold(a.Type, "DC") {
				parts = append(parts, a.Value)
			}
		}
	}
	return strings.Join(parts, ".")
}

// netbiosDomain reads the domain's NetBIOS name from its crossRef object,
// falling back to the DNS name of the naming context.
func (d *Directory) netbiosDomain(ctx context.Context, s *session) string {
	fallback := dnsDomainOf(s.dse.DefaultNamingContext)
	if s.dse.ConfigurationNamingContext == "" || s.dse.DefaultNamingContext == "" {
		return fallback
	}
	req := ldap.NewSearchRequest("CN=Partitions,"+s.dse.ConfigurationNamingContext,
		ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 1, 0, false,
		"(&(objectClass=crossRef)(nCName="+EscapeFilterValue(s.dse.DefaultNamingContext)+"))",
		[]string{"nETBIOSName"}, nil)
	sctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	resp := s.conn.SearchAsync(sctx, req, 1)
	name := ""
	for resp.Next() {
		if e := resp.Entry(); e != nil && name == "" {
			name = e.GetEqualFoldAttributeValue("nETBIOSName")
		}
	}
	if name == "" {
		return fallback
	}
	return name
}

// Discover streams the directory's computers on out, as described on
// Directory. It returns nil when every subtree was read, ctx.Err() when
// ctx ended first, and an *LDAPError otherwise. It never closes out, and
// it closes its connection and stops its lookups before it returns.
func (d *Directory) Discover(ctx context.Context, out chan<- discovery.Host) error {
	if out == nil {
		return opError(OpValidate, "", "nil output channel", ErrBadConfig, nil)
	}
	log := d.logger()
	started := time.Now()
	s, err := d.connect(ctx)
	if err != nil {
		return err
	}
	// Closing the connection is what stops a search that is still
	// streaming when ctx ends or the consumer goes away.
	defer s.conn.Close()

	bases, err := d.searchBases(s.dse)
	if err != nil {
		return err
	}
	domain := d.netbiosDomain(ctx, s)

	// Address lookups run beside the search: a host is sent first, then
	// its resolved snapshot. A bounded queue decouples the two; when DNS
	// falls more than resolveQueue hosts behind, the search waits.
	var (
		jobs chan discovery.Host
		wg   sync.WaitGroup
		rs   resolveState
	)
	rctx, stopResolve := context.WithCancel(ctx)
	defer stopResolve()
	if !d.SkipResolve {
		q := make(chan discovery.Host, resolveQueue)
		jobs = q
		n := d.ResolveConcurrency
		if n <= 0 {
			n = DefaultResolveConcurrency
		}
		for range n {
			// q, not jobs: finishResolve sets jobs to nil, possibly
			// before a worker has started.
			wg.Go(func() { d.resolveWorker(rctx, q, out, &rs) })
		}
	}
	// finishResolve lets the lookups run at most resolveAfterListing
	// after the listing, then stops them: a silent DNS server never holds
	// the listing's end.
	finishResolve := func() {
		if jobs != nil {
			close(jobs)
			jobs = nil
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		t := time.NewTimer(resolveAfterListing)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			stopResolve()
			<-done
		}
	}
	defer func() {
		stopResolve()
		finishResolve()
	}()

	filter := computerFilter(d.NameFilter, d.IncludeDisabled)
	paged := s.dse.supportsControl(oidPagedResults) || len(s.dse.Controls) == 0
	var count int
	firstAt := time.Duration(0)
	emit := func(e *ldap.Entry) error {
		h, merr := entryToHost(e, domain, time.Now())
		if merr != nil {
			log.Debug("ldap: attribute skipped", "dn", e.DN, "err", merr)
		}
		if h.Name == "" {
			return nil
		}
		select {
		case out <- h:
		case <-ctx.Done():
			return ctx.Err()
		}
		count++
		if count == 1 {
			firstAt = time.Since(started)
		}
		if jobs != nil && h.DNSName != "" {
			// The listing never waits for DNS: a host that finds the
			// queue full keeps the address it has (none).
			select {
			case jobs <- h:
			default:
				rs.skipped.Add(1)
			}
		}
		return nil
	}
	for _, base := range bases {
		if err := d.search(ctx, s, base, filter, paged, emit); err != nil {
			return err
		}
	}
	finishResolve()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	log.Info("ldap: directory read", "dc", s.server, "computers", count,
		"first", firstAt, "elapsed", time.Since(started), "unresolved", rs.unresolved(), "dns_breaker_open", rs.open.Load())
	_ = s.conn.Unbind()
	return nil
}

// search runs one paged search and calls emit for each entry, in order.
func (d *Directory) search(ctx context.Context, s *session, base, filter string, paged bool, emit func(*ldap.Entry) error) error {
	var paging *ldap.ControlPaging
	var controls []ldap.Control
	if paged {
		paging = ldap.NewControlPaging(d.pageSize())
		controls = []ldap.Control{paging}
	}
	for page := 1; ; page++ {
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, filter, d.attributes(), controls)
		// A cancel of our own stops go-ldap's goroutine on every way out.
		sctx, cancel := context.WithCancel(ctx)
		resp := s.conn.SearchAsync(sctx, req, 64)
		var (
			cookie  []byte
			emitErr error
		)
		for resp.Next() {
			if e := resp.Entry(); e != nil {
				if emitErr = emit(e); emitErr != nil {
					break
				}
				continue
			}
			if ref := resp.Referral(); ref != "" {
				d.logger().Debug("ldap: referral not followed", "ref", ref)
			}
			if c := ldap.FindControl(resp.Controls(), ldap.ControlTypePaging); c != nil {
				if pc, ok := c.(*ldap.ControlPaging); ok {
					cookie = pc.Cookie
				}
			}
		}
		cancel()
		if emitErr != nil {
			drain(resp)
			return emitErr
		}
		if ctx.Err() != nil {
			drain(resp)
			return ctx.Err()
		}
		if err := resp.Err(); err != nil {
			drain(resp)
			return searchErr(s.server, base, err)
		}
		if paging == nil || len(cookie) == 0 {
			return nil
		}
		d.logger().Debug("ldap: next page", "base", base, "page", page+1)
		paging.SetCookie(cookie)
	}
}

// drain waits for go-ldap's search goroutine to finish (its context is
// canceled, so it stops at its next step).
func drain(r ldap.Response) {
	for r.Next() {
	}
}

// searchErr converts a go-ldap search error.
func searchErr(server, base string, err error) error {
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode < 1000 && le.ResultCode != ldap.ErrorNetwork {
		diag := ""
		if le.Err != nil {
			diag = le.Err.Error()
		}
		e := resultError(OpSearch, server, int(le.ResultCode), diag)
		if le.ResultCode == ldap.LDAPResultNoSuchObject {
			e.Meaning += " (base " + base + ")"
		}
		return e
	}
	return opError(OpSearch, server, "search failed", nil, err)
}

// resolveState is shared by a Discover's address lookups: a circuit
// breaker that opens after resolveBreaker consecutive timeouts or
// resolveMissBreaker consecutive answers without an address, and the
// counts of names left without an address.
type resolveState struct {
	timeouts atomic.Int32 // consecutive lookups that timed out
	misses   atomic.Int32 // consecutive lookups answered without an address
	open     atomic.Bool  // DNS is taken as silent: no more lookups
	failed   atomic.Int64 // looked up, no address
	skipped  atomic.Int64 // not looked up (queue full, breaker open, stopped)
}

func (rs *resolveState) unresolved() int64 { return rs.failed.Load() + rs.skipped.Load() }

// resolveWorker looks up the addresses of the hosts on jobs and sends the
// updated snapshots.
func (d *Directory) resolveWorker(ctx context.Context, jobs <-chan discovery.Host, out chan<- discovery.Host, rs *resolveState) {
	r := d.resolver()
	log := d.logger()
	for h := range jobs {
		if ctx.Err() != nil || rs.open.Load() {
			rs.skipped.Add(1)
			continue // drain quickly
		}
		lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		addrs, err := r.LookupNetIP(lctx, "ip", h.DNSName)
		timedOut := lctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
		cancel()
		if timedOut {
			if rs.timeouts.Add(1) >= resolveBreaker && !rs.open.Swap(true) {
				log.Warn("ldap: DNS does not answer; the remaining names are not looked up", "consecutive_timeouts", resolveBreaker)
			}
		} else {
			rs.timeouts.Store(0)
		}
		if !timedOut && ctx.Err() == nil {
			if err != nil || len(addrs) == 0 {
				if rs.misses.Add(1) >= resolveMissBreaker && !rs.open.Swap(true) {
					log.Warn("ldap: DNS knows none of the last names asked; the remaining names are not looked up (is this the domain's DNS server?)", "consecutive_misses", resolveMissBreaker)
				}
			} else {
				rs.misses.Store(0)
			}
		}
		if err != nil || len(addrs) == 0 {
			rs.failed.Add(1)
			if ctx.Err() == nil {
				log.Debug("ldap: no address", "host", h.DNSName, "err", err)
			}
			continue
		}
		h.Addrs = make([]netip.Addr, 0, len(addrs))
		for _, a := range addrs {
			h.Addrs = append(h.Addrs, a.Unmap())
		}
		h.LastSeen = time.Now()
		h.Sources = append([]discovery.Source(nil), h.Sources...)
		h.Roles = append([]discovery.Role(nil), h.Roles...)
		select {
		case out <- h:
		case <-ctx.Done():
		}
	}
}
