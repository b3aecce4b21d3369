package remotereg

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/etypeID"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/krb"
	"github.com/lanconnect/lanconnect/internal/krb/krbtest"
	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/testutil/rpcproxy"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// TestKerberosTamperingOverTCP is the end-to-end proof for Kerberos-sealed
// RPC: the SCM over TCP of a Kerberos grant (host/FQDN, PKT_PRIVACY)
// against winemu that accepts Kerberos only, with tickets from a KDC in
// this process, through a man in the middle (rpcproxy) that alters one
// sealed svcctl response. Every alteration fails the launch with
// adauth.ErrIntegrity (a cut stream with a connection error), the client
// sends no request on that connection afterwards, and no service is left;
// the same launch through the same proxy, unaltered, reaches a running
// service. For AES256 (what AD negotiates) and RC4-HMAC, and for NTLM
// (rpcauth's verifier) through the same proxy.
func TestKerberosTamperingOverTCP(t *testing.T) {
	for name, et := range map[string]int32{"aes256": etypeID.AES256_CTS_HMAC_SHA1_96, "rc4": etypeID.RC4_HMAC, "ntlm": 0} {
		t.Run(name, func(t *testing.T) { testTampering(t, et) })
	}
}

// testTampering runs the alterations against a Kerberos grant with keys
// of type et, or an NTLM one for et 0.
func testTampering(t *testing.T, et int32) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const fqdn = "pc1.lab.example"
	pass := "Kerb-" + time.Now().Format("150405.000000")
	var configure []func(*winemu.Server)
	var kerberos func(ctx context.Context, class string, seal bool) ([]dcerpc.Option, error)
	if et != 0 {
		kdc, err := krbtest.Start(ctx, testutil.LoopbackIP()+":0", "LAB.EXAMPLE", et)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kdc.Close() })
		kdc.AddUser("tester", pass)
		if err := kdc.AddService("host/"+fqdn, "RPCSS/"+fqdn); err != nil {
			t.Fatal(err)
		}
		configure = append(configure, func(s *winemu.Server) {
			s.Keytab, s.NoNTLM = kdc.Keytab(), true
			s.Users["tester"] = winemu.User{Admin: true, Password: "unused-" + pass}
		})
		cache := krb.NewCache(krb.Config{KDC: kdc.Addr(), Timeout: 5 * time.Second})
		t.Cleanup(func() { cache.Close() })
		kerberos = krbtest.RPC(cache, krb.Credential{User: "tester", Realm: kdc.Realm(), Password: pass}, fqdn)
	}
	e := startEmu(t, configure...)
	ports := []int{135} // the endpoint mapper, then what it names
	for _, ep := range e.srv.Endpoints() {
		ports = append(ports, int(ep.Addr.Port()))
	}
	mitm := testutil.LoopbackIP()
	proxy, err := rpcproxy.Start(ctx, mitm, e.host, ports...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	tgt := target{Addr: mitm, Kerberos: kerberos}
	if et == 0 {
		tgt.Credentials = e.admin
	}
	middle := 24 // inside the Kerberos token's encrypted part or checksum
	if et == 0 {
		middle = 8 // inside the NTLMSSP checksum
	}
	l := tcpLauncher()
	port, err := l.mapTCP(ctx, mitm, svcctl.SvcctlSyntaxV2_0)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name      string
		nth       int
		mutate    rpcproxy.Mutation
		integrity bool // the error must match adauth.ErrIntegrity
		replay    func([]byte, [][]byte) ([]byte, bool)
	}{
		{"stub bit", 1, rpcproxy.FlipStub(3, 0), true, nil},
		{"last stub bit", 1, rpcproxy.FlipStub(-1, 7), true, nil},
		{"verifier checksum bit", 1, rpcproxy.FlipVerifier(-1, 0), true, nil},
		{"verifier middle bit", 1, rpcproxy.FlipVerifier(middle, 4), true, nil},
		{"stub bit of CreateService", 2, rpcproxy.FlipStub(1, 2), true, nil},
		{"verifier stripped", 1, rpcproxy.StripVerifier(), true, nil},
		{"verifier cut short", 1, rpcproxy.ShortVerifier(8), true, nil},
		{"garbage body", 1, rpcproxy.Garbage(), true, nil},
		{"stream cut", 1, rpcproxy.Truncate(40), false, nil},
		{"OpenSCManager's response replayed for CreateService", 2, nil, true, rpcproxy.ReplayEarlier(1, false)},
		{"replayed, with the clear sequence number fixed", 2, nil, true, rpcproxy.ReplayEarlier(1, true)},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(proxy.Events())
			proxy.Add(rpcproxy.Rule{Port: port, Nth: c.nth, Mutate: c.mutate, Replay: c.replay, Name: c.name})
			h, err := l.launchTarget(ctx, tgt, e.spec(), nil)
			if h != nil {
				h.Stop(ctx)
			}
			ev := proxy.Events()
			if len(ev) != before+1 {
				t.Fatalf("the proxy altered %d responses, want 1 (events %+v); launch err %v", len(ev)-before, ev, err)
			}
			switch {
			case err == nil:
				t.Fatalf("the launch succeeded on an altered response (%+v)", ev[len(ev)-1])
			case c.integrity && !errors.Is(err, adauth.ErrIntegrity):
				t.Fatalf("err = %v, want adauth.ErrIntegrity", err)
			}
			if c.integrity {
				if le := expectLaunchError(t, err, nil); le.Diagnosis.Code != "rpc-integrity" {
					t.Errorf("diagnosis %+v, want rpc-integrity", le.Diagnosis)
				}
			}
			if n := ev[len(ev)-1].RequestsAfter; n != 0 {
				t.Errorf("the client sent %d requests on the connection after the altered response", n)
			}
			// A service whose creation was answered with an altered
			// response is deleted by the launcher; winemu removes it once
			// the broken connection's handle is closed too.
			if svcs := waitNoServices(e.srv, 5*time.Second); len(svcs) != 0 {
				t.Errorf("services left: %+v", svcs)
			}
			t.Logf("%s: %v", c.name, err)
		})
	}

	// Header signing (which puts the call_id under the checksum) stripped
	// from the bind_ack, so that a replayed response with the current
	// call_id would pass, then an earlier response replayed. With NTLM the
	// replay fails the signature check; with Kerberos the server already
	// refuses the first request, whose header the client no longer signs
	// (fault 0x721, RPC_S_SEC_PKG_ERROR). Either way nothing is launched.
	t.Run("header signing stripped, then replayed", func(t *testing.T) {
		before := len(proxy.Events())
		proxy.Add(rpcproxy.Rule{Port: port, Nth: 1, Control: true, Mutate: rpcproxy.ClearFlags(0x04), Name: "no header signing"})
		proxy.Add(rpcproxy.Rule{Port: port, Nth: 2, Replay: rpcproxy.ReplayEarlier(1, true), Name: "replay"})
		h, err := l.launchTarget(ctx, tgt, e.spec(), nil)
		if h != nil {
			h.Stop(ctx)
		}
		ev := proxy.Events()[before:]
		t.Logf("events %+v, err %v", ev, err)
		if err == nil {
			t.Fatal("the launch succeeded with header signing stripped")
		}
		if et == 0 && !errors.Is(err, adauth.ErrIntegrity) {
			t.Errorf("NTLM: err = %v, want adauth.ErrIntegrity", err)
		}
		if len(ev) == 2 && ev[1].RequestsAfter != 0 {
			t.Errorf("the client sent %d requests after the replayed response", ev[1].RequestsAfter)
		}
		if svcs := waitNoServices(e.srv, 5*time.Second); len(svcs) != 0 {
			t.Errorf("services left: %+v", svcs)
		}
		// Rules that did not fire (Kerberos: the replay) must not hit a
		// later subtest.
		proxy.Clear()
	})

	// The lowest bit flipped in any byte of the verifier: the Kerberos
	// token's header (token ID, flags, filler, lengths, sequence number),
	// its encrypted part and its checksum, or the NTLMSSP signature. (The
	// flags' AcceptorSubkey bit alone is not checked; see
	// internal/krb's krbVerifier.header.)
	t.Run("every verifier byte", func(t *testing.T) {
		for i, n := 0, 1; i < n; i++ {
			before := len(proxy.Events())
			proxy.Add(rpcproxy.Rule{Port: port, Nth: 1, Mutate: rpcproxy.FlipVerifier(i, 0), Name: fmt.Sprintf("verifier byte %d", i)})
			h, err := l.launchTarget(ctx, tgt, e.spec(), nil)
			if h != nil {
				h.Stop(ctx)
			}
			ev := proxy.Events()
			if len(ev) != before+1 {
				t.Fatalf("byte %d: the proxy altered %d responses, want 1", i, len(ev)-before)
			}
			n = ev[len(ev)-1].AuthLength
			if !errors.Is(err, adauth.ErrIntegrity) || ev[len(ev)-1].RequestsAfter != 0 {
				t.Errorf("byte %d of %d: err = %v, %d requests after; want adauth.ErrIntegrity and none", i, n, err, ev[len(ev)-1].RequestsAfter)
			}
		}
		if svcs := waitNoServices(e.srv, 5*time.Second); len(svcs) != 0 {
			t.Errorf("services left: %+v", svcs)
		}
	})

	t.Run("unaltered through the proxy", func(t *testing.T) {
		h, err := l.launchTarget(ctx, tgt, e.spec(), nil)
		if err != nil {
			t.Fatalf("launch through the proxy: %v", err)
		}
		if ok, err := h.Running(ctx); err != nil || !ok {
			t.Errorf("Running = %v, %v", ok, err)
		}
		if err := h.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// waitNoServices polls winemu until it has no service or d has passed,
// and returns the services it last saw.
func waitNoServices(srv *winemu.Server, d time.Duration) []winemu.ServiceInfo {
	deadline := time.Now().Add(d)
	for {
		svcs := srv.SCM().Services()
		if len(svcs) == 0 || time.Now().After(deadline) {
			return svcs
		}
		time.Sleep(10 * time.Millisecond)
	}
}
