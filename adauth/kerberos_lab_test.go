package adauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestKerberosLab: on a domain with NTLM disabled, SMBAuthenticator logs
// on to a joined member with Kerberos (policy kerberos, and auto given
// the member's DNS name), proves administrator rights over the Kerberos
// session (ADMIN$ write, SCM over \pipe\svcctl), and shares one TGT
// between logons; by address only, auto takes NTLM, which the member
// refuses with the advice to use Kerberos.
func TestKerberosLab(t *testing.T) {
	lab := testlab.New(t, testlab.Options{
		DC:      &testlab.DCSpec{NoNTLM: true},
		Targets: []testlab.TargetSpec{{DomainMember: true, Variant: testlab.NTLMDisabled}},
	})
	dc, m := lab.DC, lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, netip.AddrPortFrom(dc.Addr, 53).String())
	}}
	k, err := NewKerberos(KerberosConfig{Resolver: res, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	creds, err := Parse(dc.Domain+`\`+dc.Admin.User, dc.Admin.Password)
	if err != nil {
		t.Fatal(err)
	}
	addr := m.Addr.String()
	for i, a := range []SMBAuthenticator{{Auth: AuthKerberos, Kerberos: k, Encryption: EncryptRequired}, {Kerberos: k}} {
		// The session passes the host's DNS name as the expected name and
		// dials its address.
		g, err := a.Authenticate(WithExpectedName(ctx, m.FQDN), addr, creds)
		if err != nil {
			t.Fatalf("logon %d with Kerberos to %s: %v", i, m.FQDN, err)
		}
		f := g.Facts
		if f.Auth != MethodKerberos || f.SPN != "cifs/"+strings.ToLower(m.FQDN) || !f.Signed || (i == 0 && !f.Encrypted) || len(f.Checks) != 2 {
			t.Errorf("logon %d facts: %+v", i, f)
		}
		_ = g.Close()
	}
	if st := k.Stats(); st.ASExchanges != 1 || st.TGSReqs != 1 {
		t.Errorf("two logons to one host: %+v, want one AS exchange and one TGS-REQ", st)
	}

	// By address only: auto takes NTLM, which the member refuses.
	var a SMBAuthenticator
	a.Kerberos = k
	_, err = a.Authenticate(ctx, addr, creds)
	var ae *AuthError
	if !errors.As(err, &ae) || !errors.Is(err, ErrNTLMBlocked) || ae.Diagnosis.Code != diag.NTLMBlocked || !strings.Contains(ae.Diagnosis.Fix, "Kerberos") {
		t.Fatalf("auto by address: %v, want NTLM blocked with the advice to use Kerberos", err)
	}
	// kerberos by address only: refused before anything is sent.
	a.Auth = AuthKerberos
	_, err = a.Authenticate(ctx, addr, creds)
	if !errors.As(err, &ae) || ae.Diagnosis.Code != diag.KerberosNeedsDNSName {
		t.Fatalf("kerberos by address: %v, want %s", err, diag.KerberosNeedsDNSName)
	}
	// A wrong password: diagnosed once, not sent again.
	bad := creds.WithPassword("wrong-" + lab.ID)
	before := k.Stats().ASReqs
	for range 2 {
		_, err = a.Authenticate(WithExpectedName(ctx, m.FQDN), addr, bad)
		if !errors.As(err, &ae) || ae.Diagnosis.Code != diag.KerberosWrongPassword || !errors.Is(err, ErrLogonFailure) || !CredentialsRefused(err) {
			t.Fatalf("wrong password: %v, want %s", err, diag.KerberosWrongPassword)
		}
	}
	if n := k.Stats().ASReqs - before; n > 2 {
		t.Errorf("the wrong password went to the KDC in %d AS-REQs over two logons, want one exchange (at most 2 AS-REQs)", n)
	}

	// The directory binds with Kerberos (SASL GSSAPI over LDAPS, ticket
	// for ldap/DC from the same cache: no new AS exchange), explicitly and
	// under BindAuto, and lists the member.
	for _, bind := range []BindMethod{BindKerberos, BindAuto} {
		st0 := k.Stats()
		d := &Directory{URL: "ldaps://" + netip.AddrPortFrom(dc.Addr, 636).String(), ServerName: dc.Hostname, RootCAs: dc.CAPool,
			Credentials: creds, Bind: bind, Kerberos: k, SkipResolve: true}
		var logBuf bytes.Buffer
		d.Logger = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		hosts, err := collect(t, ctx, d)
		if err != nil {
			t.Fatalf("directory with %v bind: %v", bind, err)
		}
		found := false
		for _, h := range hosts {
			found = found || strings.EqualFold(h.DNSName, m.FQDN)
		}
		st := k.Stats()
		if !found || st.ASExchanges != st0.ASExchanges {
			t.Errorf("%v bind: member %s found %v among %d hosts; KDC traffic %+v after %+v (want no new AS exchange)", bind, m.FQDN, found, len(hosts), st, st0)
		}
		if !strings.Contains(logBuf.String(), "ldap: Kerberos bind") {
			t.Errorf("%v bind: no Kerberos bind logged:\n%s", bind, logBuf.String())
		}
		if bind == BindKerberos && st.TGSReqs != st0.TGSReqs+1 {
			t.Errorf("Kerberos bind: TGS-REQs %d -> %d, want one for ldap/%s", st0.TGSReqs, st.TGSReqs, dc.Hostname)
		}
	}
	// Kerberos needs the DC's DNS name: by address, with no ServerName,
	// the bind fails before any ticket is asked for.
	d := &Directory{URL: "ldaps://" + netip.AddrPortFrom(dc.Addr, 636).String(), RootCAs: dc.CAPool,
		TLSConfig: &tls.Config{ServerName: dc.Hostname}, Credentials: creds, Bind: BindKerberos, Kerberos: k, SkipResolve: true}
	if _, err := collect(t, ctx, d); !errors.Is(err, ErrBindMethod) {
		t.Errorf("Kerberos bind to the DC by address: %v, want ErrBindMethod (needs the DNS name)", err)
	}
}
