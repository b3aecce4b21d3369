package adauth

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/lanconnect/lanconnect/discovery"
)

func TestResultErrorSentinels(t *testing.T) {
	for _, tc := range []struct {
		code     int
		diag     string
		sentinel error
		meaning  string
	}{
		{8, "BindSimple: Transport encryption required.", ErrStrongAuthRequired, "strong authentication required"},
		{13, "", ErrConfidentialityRequired, "confidentiality required"},
		{49, "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563", ErrInvalidCredentials, "invalid credentials: wrong password or unknown user"},
		{49, "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563", ErrInvalidCredentials, "invalid credentials: account locked out"},
		{49, "", ErrInvalidCredentials, "invalid credentials"},
		{50, "", ErrInsufficientAccess, "insufficient access rights"},
		{1, "000004DC: LdapErr: DSID-0C090A5C, comment: In order to perform this operation a successful bind must be completed on the connection., data 0, v4563", ErrInsufficientAccess, "operations error"},
	} {
		err := error(resultError(OpBind, "192.0.2.1:636", tc.code, tc.diag))
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("code %d: errors.Is(%v, %v) = false", tc.code, err, tc.sentinel)
		}
		var le *LDAPError
		if !errors.As(err, &le) || le.Code != tc.code || le.Meaning != tc.meaning || le.Op != OpBind {
			t.Errorf("code %d: LDAPError %+v, want meaning %q", tc.code, le, tc.meaning)
		}
		if !strings.Contains(err.Error(), tc.meaning) {
			t.Errorf("code %d: message %q lacks %q", tc.code, err, tc.meaning)
		}
		for _, other := range []error{ErrTLS, ErrCertificate, ErrBadConfig} {
			if errors.Is(err, other) {
				t.Errorf("code %d matches %v", tc.code, other)
			}
		}
	}
	if errors.Is(resultError(OpSearch, "", 32, ""), ErrInvalidCredentials) {
		t.Error("noSuchObject matches ErrInvalidCredentials")
	}
}

func TestTLSErrorClassification(t *testing.T) {
	host := tlsError("dc:636", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "wrong.example"})
	if !errors.Is(host, ErrCertificate) || !errors.Is(host, ErrTLS) {
		t.Errorf("hostname error does not match ErrCertificate and ErrTLS: %v", host)
	}
	var he x509.HostnameError
	if !errors.As(host, &he) || he.Host != "wrong.example" {
		t.Errorf("hostname error does not unwrap to x509.HostnameError")
	}
	if !strings.Contains(host.Error(), "not valid for the server name") {
		t.Errorf("message %q", host)
	}

	ua := tlsError("dc:636", x509.UnknownAuthorityError{})
	var uae x509.UnknownAuthorityError
	if !errors.Is(ua, ErrCertificate) || !errors.As(ua, &uae) || errors.As(ua, &he) {
		t.Errorf("unknown authority classification: %v", ua)
	}

	hs := tlsError("dc:636", errors.New("remote error: tls: handshake failure"))
	if !errors.Is(hs, ErrTLS) || errors.Is(hs, ErrCertificate) {
		t.Errorf("plain handshake failure classification: %v", hs)
	}
}

func TestParseLDAPURL(t *testing.T) {
	for in, want := range map[string]target{
		"ldaps://dc1.corp.example":       {host: "dc1.corp.example", port: 636, ldaps: true, source: "url"},
		"LDAP://dc1.corp.example":        {host: "dc1.corp.example", port: 389, source: "url"},
		"ldaps://10.1.2.3:3269":          {host: "10.1.2.3", port: 3269, ldaps: true, source: "url"},
		"ldap://[2001:db8::1]:1389/":     {host: "2001:db8::1", port: 1389, source: "url"},
		"ldap://[2001:db8::1]":           {host: "2001:db8::1", port: 389, source: "url"},
		"ldaps://dc1/DC=corp,DC=example": {host: "dc1", port: 636, ldaps: true, source: "url"},
	} {
		got, err := parseLDAPURL(in)
		if err != nil || got != want {
			t.Errorf("parseLDAPURL(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "dc1", "http://dc1", "ldaps://", "ldaps://dc1:0", "ldaps://dc1:x"} {
		if _, err := parseLDAPURL(bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("parseLDAPURL(%q) error %v, want ErrBadConfig", bad, err)
		}
	}
}

func TestSearchBases(t *testing.T) {
	dse := &rootDSE{DefaultNamingContext: "DC=corp,DC=example"}
	d := &Directory{}
	got, err := d.searchBases(dse)
	if err != nil || len(got) != 1 || got[0] != "DC=corp,DC=example" {
		t.Fatalf("default base: %v %v", got, err)
	}
	d.OUs = []string{
		"OU=Sales,DC=corp,DC=example",
		"OU=EMEA,OU=Sales,DC=corp,DC=example", // inside Sales: skipped
		"ou=sales,dc=corp,dc=example",         // Sales again: skipped
		"OU=Labs,DC=corp,DC=example",
	}
	got, err = d.searchBases(dse)
	if err != nil || len(got) != 2 || got[0] != d.OUs[0] || got[1] != d.OUs[3] {
		t.Fatalf("OUs: %q %v", got, err)
	}
	d.OUs = []string{"not a dn"}
	if _, err := d.searchBases(dse); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("bad OU: %v", err)
	}
}

func TestSimpleBindName(t *testing.T) {
	mk := func(account string) Credentials {
		c, err := Parse(account, "pw")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		c    Credentials
		want string
	}{
		{mk(`CORP\alice`), `CORP\alice`},
		{mk("alice@corp.example"), "alice@corp.example"},
		{mk("alice"), "alice"},
		{Credentials{User: "CN=Alice,CN=Users,DC=corp,DC=example"}.WithPassword("pw"), "CN=Alice,CN=Users,DC=corp,DC=example"},
	} {
		if got := simpleBindName(tc.c); got != tc.want {
			t.Errorf("simpleBindName(%v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestCheckBind(t *testing.T) {
	hash, err := ParseWithHash(`CORP\alice`, "8846f7eaee8fb117ad06bdd830b7586c")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Directory{Credentials: hash, Bind: BindSimple}).checkBind(); !errors.Is(err, ErrBindMethod) {
		t.Errorf("simple bind with hash: %v", err)
	}
	if err := (&Directory{Credentials: hash}).checkBind(); err != nil {
		t.Errorf("auto with hash: %v", err)
	}
	if err := (&Directory{Bind: BindNTLM}).checkBind(); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("NTLM without credentials: %v", err)
	}
	noSecret, _ := Parse(`CORP\alice`, "")
	if err := (&Directory{Credentials: noSecret}).checkBind(); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("no secret: %v", err)
	}
}

// fakeResolver answers from maps and never touches the network.
type fakeResolver struct {
	srv   map[string][]*net.SRV
	hosts map[string][]netip.Addr
}

func (f *fakeResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := "_" + service + "._" + proto + "." + name
	if s, ok := f.srv[key]; ok {
		return key, s, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
}

func (f *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestTargetsFromSRV(t *testing.T) {
	r := &fakeResolver{srv: map[string][]*net.SRV{
		"_ldap._tcp.dc._msdcs.corp.example": {
			{Target: "dc2.corp.example.", Port: 389, Priority: 10},
			{Target: "dc1.corp.example.", Port: 389, Priority: 0},
			{Target: ".", Port: 0, Priority: 0},
		},
	}}
	d := &Directory{Domain: "corp.example", Resolver: r}
	ts, err := d.targets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].host != "dc1.corp.example" || ts[1].host != "dc2.corp.example" || ts[0].ldaps || ts[0].port != 389 {
		t.Fatalf("targets %+v", ts)
	}
	_, err = (&Directory{Domain: "other.example", Resolver: r}).targets(context.Background())
	if !errors.Is(err, ErrNoDC) {
		t.Fatalf("missing SRV: %v", err)
	}
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Fatalf("missing SRV does not unwrap to *net.DNSError: %v", err)
	}
	if _, err := (&Directory{}).targets(context.Background()); !errors.Is(err, ErrNoDC) {
		t.Fatalf("zero Directory: %v", err)
	}
}

func TestDiscoverValidation(t *testing.T) {
	ctx := context.Background()
	if err := (&Directory{URL: "ldaps://192.0.2.1"}).Discover(ctx, nil); !errors.Is(err, ErrBadConfig) {
		t.Errorf("nil channel: %v", err)
	}
	if err := (&Directory{}).Discover(ctx, make(chan discovery.Host)); !errors.Is(err, ErrNoDC) {
		t.Errorf("zero Directory: %v", err)
	}
	if err := (&Directory{URL: "http://x"}).Discover(ctx, make(chan discovery.Host)); !errors.Is(err, ErrBadConfig) {
		t.Errorf("bad URL: %v", err)
	}
}
