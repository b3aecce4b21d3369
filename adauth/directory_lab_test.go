package adauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
	//lint:ignore SA1019 the NT hash is MD4 by definition
	"golang.org/x/crypto/md4"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/internal/testutil"
)

// labDC is the shared DC of the directory lab tests.
type labDC struct {
	*testlab.DC
	started time.Time
	admin   Credentials
}

func (l *labDC) ldapsURL() string { return "ldaps://" + netip.AddrPortFrom(l.Addr, 636).String() }
func (l *labDC) ldapURL() string  { return "ldap://" + netip.AddrPortFrom(l.Addr, 389).String() }

// directory returns a Directory set up for LDAPS to the lab DC with the
// domain administrator and no address lookups.
func (l *labDC) directory() *Directory {
	return &Directory{
		URL:         l.ldapsURL(),
		ServerName:  l.Hostname,
		RootCAs:     l.CAPool,
		Credentials: l.admin,
		SkipResolve: true,
	}
}

// dcName is the DC's own computer name (first label of its host name).
func (l *labDC) dcName() string {
	n, _, _ := strings.Cut(l.Hostname, ".")
	return n
}

// collect runs d.Discover and returns every host sent, in order.
func collect(t *testing.T, ctx context.Context, d *Directory) ([]discovery.Host, error) {
	t.Helper()
	out := make(chan discovery.Host)
	done := make(chan error, 1)
	go func() { done <- d.Discover(ctx, out) }()
	var hosts []discovery.Host
	for {
		select {
		case h := <-out:
			hosts = append(hosts, h)
		case err := <-done:
			return hosts, err
		}
	}
}

// byName indexes hosts by upper-case name and fails on duplicates.
func byName(t *testing.T, hosts []discovery.Host) map[string]discovery.Host {
	t.Helper()
	m := make(map[string]discovery.Host, len(hosts))
	for _, h := range hosts {
		k := strings.ToUpper(h.Name)
		if _, dup := m[k]; dup {
			t.Errorf("host %s sent twice", h.Name)
		}
		m[k] = h
	}
	return m
}

// wantNames is the set of lab computers that keep(c) selects, upper case.
func wantNames(dc *labDC, keep func(testlab.Computer) bool) map[string]testlab.Computer {
	m := map[string]testlab.Computer{}
	for _, c := range dc.Computers {
		if keep(c) {
			m[strings.ToUpper(c.Name)] = c
		}
	}
	return m
}

// checkSet compares the names received with the lab computers expected,
// allowing the DC's own object only when allowDC.
func checkSet(t *testing.T, dc *labDC, got map[string]discovery.Host, want map[string]testlab.Computer, allowDC bool) {
	t.Helper()
	dcName := strings.ToUpper(dc.dcName())
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("computer %s not streamed", name)
		}
	}
	extra := 0
	for name, h := range got {
		if _, ok := want[name]; ok {
			continue
		}
		if allowDC && name == dcName {
			if len(h.Roles) != 1 || h.Roles[0] != discovery.RoleDomainController {
				t.Errorf("DC %s has roles %v", name, h.Roles)
			}
			continue
		}
		extra++
		if extra <= 5 {
			t.Errorf("unexpected computer %s (%s)", name, h.DN)
		}
	}
	if extra > 5 {
		t.Errorf("... and %d more unexpected computers", extra-5)
	}
	n := len(want)
	if allowDC {
		n++
	}
	if len(got) != n {
		t.Errorf("streamed %d computers, want %d", len(got), n)
	}
}

func ntHashHex(password string) string {
	h := md4.New()
	for _, u := range utf16.Encode([]rune(password)) {
		h.Write([]byte{byte(u), byte(u >> 8)})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dcResolver asks the lab DC's own DNS server (Samba's internal DNS), so
// that no lab name ever reaches the system resolver.
func dcResolver(dc *labDC) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, netip.AddrPortFrom(dc.Addr, 53).String())
		},
	}
}

// ldapGoroutines returns the stacks of goroutines still running code of
// go-ldap or of this package's directory discoverer.
func ldapGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var leaked []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "go-ldap/ldap") || strings.Contains(g, "adauth.(*Directory)") || strings.Contains(g, "adauth.(*preConn)") {
			leaked = append(leaked, g)
		}
	}
	return leaked
}

// waitNoLeak waits until no directory goroutine is left: go-ldap's reader
// notices the closed socket asynchronously, so give it a moment.
func waitNoLeak(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked := ldapGoroutines()
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left behind:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDirectoryLab(t *testing.T) {
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{Computers: 2000}})
	if lab.DC == nil {
		t.Fatal("lab has no DC")
	}
	admin, err := Parse(lab.DC.Domain+`\`+lab.DC.Admin.User, lab.DC.Admin.Password)
	if err != nil {
		t.Fatal(err)
	}
	dc := &labDC{DC: lab.DC, started: time.Now(), admin: admin}
	if len(dc.Computers) < 2000 {
		t.Fatalf("lab has %d computers, want at least 2000", len(dc.Computers))
	}
	enabled := wantNames(dc, func(c testlab.Computer) bool { return c.Enabled })
	all := wantNames(dc, func(testlab.Computer) bool { return true })
	if len(enabled) == len(all) {
		t.Fatal("lab has no disabled computers")
	}
	ctx := context.Background()

	t.Run("AllEnabledOnce", func(t *testing.T) {
		hosts, err := collect(t, ctx, dc.directory())
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		got := byName(t, hosts)
		checkSet(t, dc, got, enabled, true)
		// Mapping: every field against what the lab loaded.
		for name, c := range enabled {
			h, ok := got[name]
			if !ok {
				continue
			}
			if !strings.EqualFold(h.DN, c.DN) || h.DNSName != c.DNSName || h.OS != c.OS || h.OSVersion != c.OSVersion {
				t.Errorf("%s: got DN %q DNS %q OS %q %q; want %q %q %q %q", name, h.DN, h.DNSName, h.OS, h.OSVersion, c.DN, c.DNSName, c.OS, c.OSVersion)
			}
			if h.Enabled == nil || !*h.Enabled {
				t.Errorf("%s: Enabled %v", name, h.Enabled)
			}
			if len(h.GUID) != 36 {
				t.Errorf("%s: GUID %q", name, h.GUID)
			}
			if h.Created.IsZero() || h.Created.After(time.Now().Add(time.Minute)) {
				t.Errorf("%s: Created %v", name, h.Created)
			}
			if !h.LastLogon.IsZero() {
				t.Errorf("%s: LastLogon %v for a computer that never logged on", name, h.LastLogon)
			}
			if !strings.EqualFold(h.Domain, dc.Domain) {
				t.Errorf("%s: Domain %q, want %q", name, h.Domain, dc.Domain)
			}
			if len(h.Sources) != 1 || h.Sources[0] != discovery.SourceLDAP || len(h.Addrs) != 0 {
				t.Errorf("%s: Sources %v Addrs %v", name, h.Sources, h.Addrs)
			}
		}
		checkGUIDs(t, dc, got)
	})

	t.Run("IncludeDisabled", func(t *testing.T) {
		d := dc.directory()
		d.IncludeDisabled = true
		d.PageSize = 300 // several pages, odd boundary
		hosts, err := collect(t, ctx, d)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		got := byName(t, hosts)
		checkSet(t, dc, got, all, true)
		for name, c := range all {
			if h, ok := got[name]; ok && (h.Enabled == nil || *h.Enabled != c.Enabled) {
				t.Errorf("%s: Enabled %v, want %v", name, h.Enabled, c.Enabled)
			}
		}
	})

	t.Run("OUScope", func(t *testing.T) {
		// Pick every OU that holds computers, plus the lab's computer OU
		// once nested: list a parent and one of its children, so the
		// dedup of nested OUs is exercised when the lab has one.
		ous := map[string]bool{}
		for _, c := range dc.Computers {
			ous[c.OU] = true
		}
		var parent, child string
		for ou := range ous {
			p, _ := ldap.ParseDN(ou)
			for other := range ous {
				o, _ := ldap.ParseDN(other)
				if p.AncestorOfFold(o) {
					parent, child = ou, other
				}
			}
		}
		if parent == "" {
			for ou := range ous {
				parent = ou
				break
			}
		}
		scope := []string{parent}
		if child != "" {
			scope = append(scope, child)
		}
		pdn, _ := ldap.ParseDN(parent)
		want := wantNames(dc, func(c testlab.Computer) bool {
			cdn, _ := ldap.ParseDN(c.OU)
			return c.Enabled && (pdn.EqualFold(cdn) || pdn.AncestorOfFold(cdn))
		})
		if len(want) == 0 || len(want) == len(enabled) {
			t.Fatalf("scope %q selects %d of %d computers: not a useful test", scope, len(want), len(enabled))
		}
		d := dc.directory()
		d.OUs = scope
		hosts, err := collect(t, ctx, d)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		checkSet(t, dc, byName(t, hosts), want, false)

		d.BaseDN, d.OUs = dc.ComputersOU, nil
		d.IncludeDisabled = true
		hosts, err = collect(t, ctx, d)
		if err != nil {
			t.Fatalf("Discover base %s: %v", dc.ComputersOU, err)
		}
		checkSet(t, dc, byName(t, hosts), all, false)

		d.BaseDN = "OU=NoSuchOU," + dc.BaseDN
		_, err = collect(t, ctx, d)
		var le *LDAPError
		if !errors.As(err, &le) || le.Op != OpSearch || le.Code != 32 {
			t.Fatalf("missing base: %v, want search result 32", err)
		}
	})

	t.Run("NameFilter", func(t *testing.T) {
		// A substring that some, not all, computers contain.
		name := dc.Computers[len(dc.Computers)/2].Name
		sub := strings.ToLower(name[len(name)-3:])
		contains := func(c testlab.Computer) bool {
			return c.Enabled && strings.Contains(strings.ToLower(c.Name), sub)
		}
		d := dc.directory()
		d.NameFilter = sub
		hosts, err := collect(t, ctx, d)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		checkSet(t, dc, byName(t, hosts), wantNames(dc, contains), strings.Contains(strings.ToLower(dc.dcName()), sub))

		// A glob anchored at the start.
		prefix := name[:len(name)-2]
		d.NameFilter = strings.ToLower(prefix) + "*"
		hosts, err = collect(t, ctx, d)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		checkSet(t, dc, byName(t, hosts), wantNames(dc, func(c testlab.Computer) bool {
			return c.Enabled && strings.HasPrefix(strings.ToUpper(c.Name), strings.ToUpper(prefix))
		}), false)
	})

	t.Run("HostileNameFilter", func(t *testing.T) {
		// Each of these, pasted into a filter unescaped, would widen the
		// search to everything (or break it). Escaped, they are literal
		// text that no computer name contains.
		for _, p := range []string{
			"*)(objectClass=*",
			"x)(|(objectClass=*",
			"*))(|(name=*",
			`\2a`,
			"*)(userAccountControl:1.2.840.113556.1.4.803:=2",
			"a\x00b",
		} {
			d := dc.directory()
			d.NameFilter = p
			d.IncludeDisabled = true
			hosts, err := collect(t, ctx, d)
			if err != nil {
				t.Errorf("NameFilter %q: %v", p, err)
				continue
			}
			if len(hosts) != 0 {
				t.Errorf("NameFilter %q matched %d computers (first %s), want 0", p, len(hosts), hosts[0].Name)
			}
		}
	})

	t.Run("Binds", func(t *testing.T) {
		user, pw, domain := dc.Admin.User, dc.Admin.Password, dc.Domain
		upn, _ := Parse(user+"@"+strings.ToLower(dc.Realm), pw)
		dn := Credentials{User: "CN=" + user + ",CN=Users," + dc.BaseDN}.WithPassword(pw)
		hash, err := ParseWithHash(domain+`\`+user, ntHashHex(pw))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			url   string
			creds Credentials
			bind  BindMethod
		}{
			{"simple DOMAIN\\user LDAPS", dc.ldapsURL(), dc.admin, BindSimple},
			{"simple UPN StartTLS", dc.ldapURL(), upn, BindSimple},
			{"simple DN LDAPS", dc.ldapsURL(), dn, BindAuto},
			{"ntlm password LDAPS", dc.ldapsURL(), dc.admin, BindNTLM},
			{"ntlm password StartTLS", dc.ldapURL(), dc.admin, BindNTLM},
			{"ntlm UPN LDAPS", dc.ldapsURL(), upn, BindNTLM},
			{"ntlm hash LDAPS (auto)", dc.ldapsURL(), hash, BindAuto},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := dc.directory()
				d.URL, d.Credentials, d.Bind = tc.url, tc.creds, tc.bind
				d.NameFilter = dc.Computers[0].Name
				hosts, err := collect(t, ctx, d)
				if err != nil {
					t.Fatalf("Discover: %v", err)
				}
				if len(hosts) == 0 {
					t.Fatalf("no host found after bind")
				}
			})
		}
	})

	t.Run("Errors", func(t *testing.T) {
		wrongPW := dc.admin.WithPassword(dc.Admin.Password + "x")
		otherCA := otherCAPool(t)
		for _, tc := range []struct {
			name   string
			modify func(d *Directory)
			check  func(t *testing.T, err error)
		}{
			{"bad password simple", func(d *Directory) { d.Credentials = wrongPW; d.Bind = BindSimple }, func(t *testing.T, err error) {
				wantLDAP(t, err, OpBind, 49, ErrInvalidCredentials)
			}},
			{"bad password ntlm", func(d *Directory) { d.Credentials = wrongPW; d.Bind = BindNTLM }, func(t *testing.T, err error) {
				wantLDAP(t, err, OpBind, 49, ErrInvalidCredentials)
			}},
			{"wrong CA", func(d *Directory) { d.RootCAs = otherCA }, func(t *testing.T, err error) {
				wantLDAP(t, err, OpTLS, -1, ErrCertificate)
				var ua x509.UnknownAuthorityError
				if !errors.As(err, &ua) {
					t.Errorf("wrong CA: %v does not unwrap to x509.UnknownAuthorityError", err)
				}
			}},
			{"wrong CA StartTLS", func(d *Directory) { d.URL = dc.ldapURL(); d.RootCAs = otherCA }, func(t *testing.T, err error) {
				wantLDAP(t, err, OpTLS, -1, ErrCertificate)
			}},
			{"wrong server name", func(d *Directory) { d.ServerName = "wrong." + strings.ToLower(dc.Realm) }, func(t *testing.T, err error) {
				wantLDAP(t, err, OpTLS, -1, ErrCertificate)
				var he x509.HostnameError
				if !errors.As(err, &he) {
					t.Errorf("wrong name: %v does not unwrap to x509.HostnameError", err)
				}
			}},
			{"system pool", func(d *Directory) { d.RootCAs = nil }, func(t *testing.T, err error) {
				wantLDAP(t, err, OpTLS, -1, ErrCertificate)
			}},
			{"plaintext simple bind", func(d *Directory) { d.URL = dc.ldapURL(); d.AllowPlaintext = true; d.Bind = BindSimple }, func(t *testing.T, err error) {
				wantLDAP(t, err, OpBind, 8, ErrStrongAuthRequired)
				if !strings.Contains(err.Error(), "strong authentication required") {
					t.Errorf("message %q does not say strong authentication required", err)
				}
			}},
			{"anonymous search", func(d *Directory) { d.Credentials = Credentials{} }, func(t *testing.T, err error) {
				if !errors.Is(err, ErrInsufficientAccess) {
					t.Errorf("anonymous: %v, want ErrInsufficientAccess", err)
				}
			}},
			{"nothing listening", func(d *Directory) { d.URL = "ldaps://" + netip.AddrPortFrom(dc.Addr, 1).String() }, func(t *testing.T, err error) {
				wantLDAP(t, err, OpDial, -1, nil)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := dc.directory()
				tc.modify(d)
				hosts, err := collect(t, ctx, d)
				if err == nil {
					t.Fatalf("Discover succeeded with %d hosts", len(hosts))
				}
				if len(hosts) != 0 {
					t.Errorf("%d hosts sent before the error", len(hosts))
				}
				if pw := dc.Admin.Password; strings.Contains(err.Error(), pw) || strings.Contains(fmt.Sprintf("%+v", err), pw) {
					t.Fatalf("error reveals the password: %v", err)
				}
				t.Logf("error: %v", err)
				tc.check(t, err)
			})
		}
		waitNoLeak(t)
	})

	t.Run("Cancel", func(t *testing.T) {
		waitNoLeak(t)
		d := dc.directory()
		d.IncludeDisabled = true
		d.PageSize = 100
		d.Resolver = &fakeResolver{hosts: map[string][]netip.Addr{}}
		d.SkipResolve = false
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		out := make(chan discovery.Host)
		done := make(chan error, 1)
		go func() { done <- d.Discover(cctx, out) }()
		for range 250 { // into the third page
			select {
			case <-out:
			case err := <-done:
				t.Fatalf("Discover ended early: %v", err)
			}
		}
		cancel()
		start := time.Now()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Discover returned %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Discover did not return within 5 s of cancel")
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("Discover took %v to return after cancel", el)
		}
		waitNoLeak(t)
	})

	t.Run("ConsumerStops", func(t *testing.T) {
		// A consumer that stops reading and then cancels: the send in
		// progress must give up.
		d := dc.directory()
		cctx, cancel := context.WithCancel(ctx)
		out := make(chan discovery.Host)
		done := make(chan error, 1)
		go func() { done <- d.Discover(cctx, out) }()
		<-out
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Discover returned %v", err)
		}
		waitNoLeak(t)
	})

	t.Run("Resolve", func(t *testing.T) {
		// A fake resolver gives each lab computer an address; each host is
		// sent without addresses first, then once more with them.
		fr := &fakeResolver{hosts: map[string][]netip.Addr{}}
		want := map[string]netip.Addr{}
		for i, c := range dc.Computers {
			if !c.Enabled || c.DNSName == "" {
				continue
			}
			a := netip.AddrFrom4([4]byte{192, 0, 2 + byte(i>>8&1), byte(i)}) // TEST-NET, never dialled
			fr.hosts[c.DNSName] = []netip.Addr{netip.AddrFrom16(a.As16())}   // v4-mapped, to check Unmap
			want[strings.ToUpper(c.Name)] = a
		}
		d := dc.directory()
		d.SkipResolve = false
		d.Resolver = fr
		d.ResolveConcurrency = 4
		hosts, err := collect(t, ctx, d)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		first := map[string]int{}
		updated := map[string]netip.Addr{}
		for i, h := range hosts {
			k := strings.ToUpper(h.Name)
			if len(h.Addrs) == 0 {
				if _, dup := first[k]; dup {
					t.Errorf("%s sent twice without addresses", k)
				}
				first[k] = i
				continue
			}
			fi, ok := first[k]
			if !ok || fi > i {
				t.Errorf("%s: resolved snapshot before the first one", k)
			}
			if _, dup := updated[k]; dup {
				t.Errorf("%s resolved twice", k)
			}
			if len(h.Addrs) != 1 {
				t.Errorf("%s: addrs %v", k, h.Addrs)
			}
			updated[k] = h.Addrs[0]
		}
		for k, a := range want {
			if updated[k] != a {
				t.Errorf("%s: resolved %v, want %v", k, updated[k], a)
			}
		}
		if len(updated) != len(want) {
			t.Errorf("%d hosts resolved, want %d", len(updated), len(want))
		}
	})

	t.Run("SRVThroughDCDNS", func(t *testing.T) {
		// Locate the DC through Samba's own DNS (SRV, then its A record),
		// with StartTLS and the certificate checked against the SRV
		// target's name; resolve the DC's own address the same way.
		d := dc.directory()
		d.URL, d.ServerName = "", ""
		d.Domain = strings.ToLower(dc.Realm)
		d.Resolver = dcResolver(dc)
		d.SkipResolve = false
		d.NameFilter = dc.dcName()
		// A password and BindAuto: the SRV-located DC gets an NTLM bind,
		// never the clear password of a simple bind.
		logs := &testutil.LockedBuffer{}
		d.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		hosts, err := collect(t, ctx, d)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		if !strings.Contains(logs.String(), "method=ntlm") || strings.Contains(logs.String(), "method=simple") {
			t.Errorf("bind to the SRV-located DC was not NTLM:\n%s", logs.String())
		}
		// An explicit simple bind to it is refused before any traffic.
		d.Bind, d.Logger = BindSimple, nil
		if _, err := collect(t, ctx, d); !errors.Is(err, ErrSimpleBindLocated) {
			t.Errorf("explicit simple bind to an SRV-located DC: %v, want ErrSimpleBindLocated", err)
		}
		d.Bind = BindAuto
		var resolved bool
		for _, h := range hosts {
			if !strings.EqualFold(h.Name, dc.dcName()) {
				t.Errorf("unexpected host %s", h.Name)
			}
			if len(h.Addrs) > 0 {
				resolved = true
				if h.Addrs[0] != dc.Addr {
					t.Errorf("DC resolved to %v, want %v", h.Addrs, dc.Addr)
				}
			}
		}
		if !resolved {
			t.Errorf("the DC's address was not resolved through its DNS (%d snapshots)", len(hosts))
		}
	})

	t.Run("CAFile", func(t *testing.T) {
		d := dc.directory()
		d.RootCAs, d.CAFile = nil, dc.CAFile
		d.NameFilter = dc.Computers[0].Name
		if _, err := collect(t, ctx, d); err != nil {
			t.Fatalf("Discover with CAFile: %v", err)
		}
	})
}

// wantLDAP checks that err is an *LDAPError of op and code matching sentinel.
func wantLDAP(t *testing.T, err error, op string, code int, sentinel error) {
	t.Helper()
	var le *LDAPError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T) is not an *LDAPError", err, err)
	}
	if le.Op != op || le.Code != code {
		t.Errorf("error %v: op %q code %d, want op %q code %d", err, le.Op, le.Code, op, code)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("error %v does not match %v", err, sentinel)
	}
}

// otherCAPool is a pool with a CA that signed nothing the lab uses.
func otherCAPool(t *testing.T) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "not the lab CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// checkGUIDs compares a sample of our GUID strings with the ones Samba
// itself formats in extended DNs (control 1.2.840.113556.1.4.529, with
// the value SEQUENCE { INTEGER 1 } that asks for the string form).
func checkGUIDs(t *testing.T, dc *labDC, got map[string]discovery.Host) {
	t.Helper()
	conn, err := ldap.DialURL(dc.ldapsURL(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: dc.CAPool, ServerName: dc.Hostname}))
	if err != nil {
		t.Fatalf("dial for GUID check: %v", err)
	}
	defer conn.Close()
	if err := conn.Bind(dc.Admin.User+"@"+strings.ToLower(dc.Realm), dc.Admin.Password); err != nil {
		t.Fatalf("bind for GUID check: %v", err)
	}
	checked := 0
	for _, c := range dc.Computers[:20] {
		h, ok := got[strings.ToUpper(c.Name)]
		if !ok {
			continue
		}
		res, err := conn.Search(ldap.NewSearchRequest(c.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"objectGUID"},
			[]ldap.Control{ldap.NewControlString("1.2.840.113556.1.4.529", false, "\x30\x03\x02\x01\x01")}))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("extended DN search of %s: %v", c.DN, err)
		}
		ext := res.Entries[0].DN // <GUID=...>;<SID=...>;CN=...
		if !strings.Contains(strings.ToLower(ext), "<guid="+h.GUID+">") {
			t.Errorf("%s: our GUID %s, server's extended DN %s", c.Name, h.GUID, ext)
		}
		checked++
	}
	if checked == 0 {
		t.Error("no GUID checked")
	}
}
