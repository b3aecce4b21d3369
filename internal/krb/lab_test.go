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
	"github.com/lanconnect/lanconnect/internal/rpcauth"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
)

// labKDCTimeout bounds each KDC connection in lab tests: generous, since
// the shared machine may be loaded.
const labKDCTimeout = 30 * time.Second

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
	cache := krb.NewCache(krb.Config{Timeout: labKDCTimeout, Resolver: res})
	defer cache.Close()

	k, err := cache.Locate(ctx, dc.Realm)
	if err != nil {
		t.Fatal(err)
	}
	if k.Source != krb.FromDNSSRV || len(k.Addrs) == 0 || k.Addrs[0] != netip.AddrPortFrom(dc.Addr, 88).String() {
		t.Fatalf("Locate: %+v, want %v:88 from DNS SRV", k, dc.Addr)
	}
	// DOMAIN\user names a NetBIOS domain: the realm comes from the
	// target's DNS name.
	realm, err := cache.RealmOf(ctx, m.FQDN)
	if err != nil || realm != dc.Realm {
		t.Fatalf("RealmOf(%s) = %q, %v; want %s", m.FQDN, realm, err, dc.Realm)
	}
	if _, err := cache.RealmOf(ctx, "host.nosuchdomain.test"); !errors.Is(err, krb.ErrNoKDC) {
		t.Errorf("RealmOf outside the realm: %v, want ErrNoKDC", err)
	}
	cred := krb.Credential{User: dc.Admin.User, Realm: realm, Password: dc.Admin.Password}
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
		if i == 0 {
			// An RPC pipe rides the Kerberos session: svcctl bound on
			// \pipe\svcctl without RPC-level auth (the session signs it).
			openSCM(ctx, t, s, nil)
			// And with RPC-level Kerberos, sealed, for host/FQDN, as
			// svcctl and winreg over TCP bind.
			ro, err := cache.RPCOptions(ctx, cred, mustSPN(t, krb.Host, m.FQDN), true)
			if err != nil {
				t.Fatal(err)
			}
			openSCM(ctx, t, s, ro)
		}
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
	if st.ASExchanges != 1 || st.TGSReqs != 2 {
		t.Errorf("two sessions and an RPC bind to one host: %+v, want 1 AS exchange and 2 TGS-REQs (cifs/, host/)", st)
	}
	// Another SPN of the same host: one more TGS exchange, no AS.
	if _, err := cache.ServiceTicket(ctx, cred, mustSPN(t, krb.Host, m.FQDN)); err != nil {
		t.Fatal(err)
	}
	if st = cache.Stats(); st.ASExchanges != 1 || st.TGSReqs != 2 {
		t.Errorf("after host/ ticket (already used by the RPC bind): %+v, want 1 AS exchange and 2 TGS-REQs", st)
	}
	t.Logf("KDC traffic: %+v", st)

	// A host that answers for the member's name but is another computer
	// (here the DC, a Kerberos server with other keys) cannot read the
	// cifs/member ticket, so it cannot complete the logon.
	in, err := cache.Initiator(ctx, cred, spn)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := smbconn.Dial(ctx, dc.Addr.String(), smbconn.Auth{User: dc.Admin.User}, smbconn.Options{Initiator: in}); err == nil {
		s.Close()
		t.Fatal("another computer accepted the member's ticket")
	} else {
		t.Logf("the member's ticket sent to the DC: %v", err)
	}

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

// openSCM binds svcctl over \pipe\svcctl on s and opens the SCM with
// SC_MANAGER_CONNECT.
func openSCM(ctx context.Context, t *testing.T, s *smbconn.Session, opts []dcerpc.Option) {
	t.Helper()
	open := func(ctx context.Context, pipe string) (net.Conn, error) { return s.OpenPipe(ctx, pipe) }
	cc, err := rpcauth.DialPipe(ctx, open, "svcctl", rpcauth.Backoff{}, nil)
	if err != nil {
		t.Fatalf("svcctl pipe: %v", err)
	}
	defer cc.Close(ctx)
	if opts == nil {
		var err error
		if opts, err = rpcauth.Options(nil, rpcauth.None); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := svcctl.NewSvcctlClient(ctx, cc, opts...)
	if err != nil {
		t.Fatalf("svcctl bind over the Kerberos SMB session: %v", err)
	}
	resp, err := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: 0x0001 /* SC_MANAGER_CONNECT */})
	if err != nil || resp.Return != 0 {
		t.Fatalf("OpenSCManagerW over the Kerberos SMB session: %v (return %d)", err, respReturn(resp))
	}
	if _, err := cli.CloseService(ctx, &svcctl.CloseServiceRequest{ServiceObject: resp.SCM}); err != nil {
		t.Errorf("CloseServiceHandle: %v", err)
	}
}

func respReturn(r *svcctl.OpenSCMWResponse) uint32 {
	if r == nil {
		return 0
	}
	return r.Return
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
