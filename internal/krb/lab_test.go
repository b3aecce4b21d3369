package krb_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/krb"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// labResolver resolves through the lab DC's DNS server only: the DC
// serves the realm, its SRV records and the members' A records.
func labResolver(dc *testlab.DC) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, netip.AddrPortFrom(dc.Addr, 53).String())
	}}
}

// TestLabKerberosSMB proves the Kerberos path end to end on the lab: a DC
// with NTLM disabled, a joined member that refuses NTLM. The KDC is found
// through the DC's DNS SRV records; one AS exchange serves several SMB
// sessions; the member accepts the cifs/FQDN ticket on a signed (then an
// encrypted) session, ADMIN$ is written and read back; NTLM with the same
// domain account is refused, with the advice to use Kerberos.
func TestLabKerberosSMB(t *testing.T) {
	lab := testlab.New(t, testlab.Options{
		DC:      &testlab.DCSpec{NoNTLM: true},
		Targets: []testlab.TargetSpec{{DomainMember: true, Variant: testlab.NTLMDisabled}},
	})
	t.Logf("Kerberos lab start: %s", lab.Timings())
	dc, m := lab.DC, lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := labResolver(dc)
	cache := krb.NewCache(krb.Config{Resolver: res})
	defer cache.Close()

	k, err := cache.Locate(ctx, dc.Realm)
	if err != nil {
		t.Fatal(err)
	}
	if k.Source != krb.FromDNSSRV || len(k.Addrs) == 0 || k.Addrs[0] != netip.AddrPortFrom(dc.Addr, 88).String() {
		t.Fatalf("Locate: %+v, want %v:88 from DNS SRV", k, dc.Addr)
	}
	cred := krb.Credential{User: dc.Admin.User, Realm: dc.Realm, Password: dc.Admin.Password}
	spn, err := krb.SPN(krb.CIFS, m.FQDN)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Resolver: res, Timeout: 5 * time.Second}
	content := []byte("lanconnect kerberos " + lab.ID)
	for i, enc := range []smbconn.Encryption{smbconn.EncryptAuto, smbconn.EncryptRequired} {
		in, err := cache.Initiator(ctx, cred, spn)
		if err != nil {
			t.Fatalf("initiator: %v", err)
		}
		s, err := smbconn.Dial(ctx, m.FQDN, smbconn.Auth{User: dc.Admin.User, Domain: dc.Domain}, smbconn.Options{Initiator: in, Dialer: dialer, Encryption: enc})
		if err != nil {
			t.Fatalf("Kerberos SMB session %d to %s: %v\nmember log:\n%s", i, m.FQDN, err, tail(filepath.Join(filepath.Dir(m.SMBConf), "log", "log.smbd")))
		}
		info := s.Info()
		if !info.Signed || info.Guest() || (enc == smbconn.EncryptRequired && !info.Encrypted) {
			t.Errorf("session %d: signed %v guest %v encrypted %v", i, info.Signed, info.Guest(), info.Encrypted)
		}
		sh, err := s.Mount(ctx, "ADMIN$")
		if err != nil {
			t.Fatalf("mount ADMIN$ over Kerberos: %v", err)
		}
		name := "Temp\\lc-krb-" + lab.ID + ".txt"
		if i == 0 {
			f, err := sh.WithContext(ctx).Create(name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(content); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()
		}
		f, err := sh.WithContext(ctx).Open(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		_ = f.Close()
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("read back %q (%v), want %q", got, err, content)
		}
		_ = sh.Umount()
		tr := s.Traffic()
		if tr.Unsigned != 0 || (enc == smbconn.EncryptRequired && tr.Encrypted == 0) {
			t.Errorf("session %d traffic: %+v", i, tr)
		}
		_ = s.Close()
	}
	onDisk, err := os.ReadFile(filepath.Join(m.AdminDir, "Temp", "lc-krb-"+lab.ID+".txt"))
	if err != nil || !bytes.Equal(onDisk, content) {
		t.Fatalf("file on the member: %q, %v", onDisk, err)
	}
	st := cache.Stats()
	if st.ASExchanges != 1 || st.TGSReqs != 1 {
		t.Errorf("two sessions to one host: %+v, want 1 AS exchange and 1 TGS-REQ", st)
	}
	// Another SPN of the same host: one more TGS exchange, no AS.
	if _, err := cache.ServiceTicket(ctx, cred, mustSPN(t, krb.Host, m.FQDN)); err != nil {
		t.Fatal(err)
	}
	if st = cache.Stats(); st.ASExchanges != 1 || st.TGSReqs != 2 {
		t.Errorf("after host/ ticket: %+v, want 1 AS exchange and 2 TGS-REQs", st)
	}
	t.Logf("KDC traffic: %+v", st)

	// NTLM with the domain account: the member refuses it; the diagnosis
	// says to use Kerberos.
	_, err = smbconn.Dial(ctx, m.Addr.String(), smbconn.Auth{User: dc.Admin.User, Domain: dc.Domain, Password: dc.Admin.Password}, smbconn.Options{})
	d := krb.DiagnoseNTLM(err)
	if !errors.Is(d, krb.ErrNTLMBlocked) || !errors.Is(err, smbconn.StatusNTLMBlocked) || !strings.Contains(d.Error(), "Kerberos") {
		t.Fatalf("NTLM logon on the member: %v (diagnosis %v), want STATUS_NTLM_BLOCKED and advice to use Kerberos", err, d)
	}
	if strings.Contains(d.Error(), dc.Admin.Password) {
		t.Fatal("the diagnosis shows the password")
	}
	t.Logf("NTLM diagnosis: %v", d)
}

func mustSPN(t *testing.T, class, fqdn string) string {
	t.Helper()
	s, err := krb.SPN(class, fqdn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
