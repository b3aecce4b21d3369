package adauth

import (
	"context"
	"errors"
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
}
