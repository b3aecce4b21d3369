package wmi

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/oiweiwei/gokrb5.fork/v9/iana/etypeID"
	"github.com/oiweiwei/gokrb5.fork/v9/service"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/krb"
	"github.com/lanconnect/lanconnect/internal/krb/krbtest"
	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/testutil/rpcproxy"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// TestKerberosTampering is the end-to-end proof for Kerberos-sealed DCOM:
// the wmi launcher of a Kerberos grant (RPCSS/FQDN on 135, then the
// dynamic port; PKT_PRIVACY) against winemu that accepts Kerberos only,
// with tickets from a KDC in this process, through a man in the middle
// (rpcproxy) that alters one sealed response: of ServerAlive2 or
// RemoteActivation on 135, of NTLMLogin or GetObject on the dynamic port.
// Every alteration fails the launch with adauth.ErrIntegrity and the
// diagnosis rpc-integrity, the client sends nothing more on that
// connection, and no process is created; unaltered, the same launch
// through the same proxy starts the applet.
func TestKerberosTampering(t *testing.T) {
	// winemu's Kerberos acceptor uses gokrb5's process-wide replay cache,
	// whose cleaner goroutine starts once per process and never ends:
	// start it before the leak check counts goroutines.
	service.GetReplayCache(5 * time.Minute)
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const fqdn = "pc1.lab.example"
	kdc, err := krbtest.Start(ctx, testutil.LoopbackIP()+":0", "LAB.EXAMPLE", etypeID.AES256_CTS_HMAC_SHA1_96)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kdc.Close() })
	pass := "Kerb-" + time.Now().Format("150405.000000")
	kdc.AddUser("tester", pass)
	if err := kdc.AddService("host/"+fqdn, "RPCSS/"+fqdn); err != nil {
		t.Fatal(err)
	}
	e := startEmu(t, func(s *winemu.Server) {
		s.Keytab, s.NoNTLM = kdc.Keytab(), true
		s.Users["tester"] = winemu.User{Admin: true, Password: "unused-" + pass}
	})
	cache := krb.NewCache(krb.Config{KDC: kdc.Addr(), Timeout: 5 * time.Second})
	t.Cleanup(func() { cache.Close() })
	dynamic := 0
	ports := []int{135}
	for _, ep := range e.srv.Endpoints() {
		if p := int(ep.Addr.Port()); p != 135 && p != dynamic {
			dynamic = p
			ports = append(ports, p)
		}
	}
	mitm := testutil.LoopbackIP()
	proxy, err := rpcproxy.Start(ctx, mitm, e.host, ports...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	// A Kerberos grant still carries the technician's credentials.
	creds, err := adauth.Parse(`LAB\tester`, pass)
	if err != nil {
		t.Fatal(err)
	}
	tgt := target{Addr: mitm, Credentials: creds, Kerberos: krbtest.RPC(cache, krb.Credential{User: "tester", Realm: kdc.Realm(), Password: pass}, fqdn)}
	spec := deploy.LaunchSpec{Path: e.applet}
	l := &Launcher{}

	for _, c := range []struct {
		name string
		rule rpcproxy.Rule
		step string
	}{
		{"ServerAlive2 stub bit", rpcproxy.Rule{Port: 135, Nth: 1, Mutate: rpcproxy.FlipStub(2, 1)}, StepServerAlive},
		{"RemoteActivation stub bit", rpcproxy.Rule{Port: 135, Nth: 2, Mutate: rpcproxy.FlipStub(-3, 5)}, StepActivate},
		{"RemoteActivation garbage", rpcproxy.Rule{Port: 135, Nth: 2, Mutate: rpcproxy.Garbage()}, StepActivate},
		{"NTLMLogin verifier bit", rpcproxy.Rule{Port: dynamic, Nth: 1, Mutate: rpcproxy.FlipVerifier(-2, 6)}, StepLogin},
		{"NTLMLogin verifier stripped", rpcproxy.Rule{Port: dynamic, Nth: 1, Mutate: rpcproxy.StripVerifier()}, StepLogin},
		{"GetObject stub bit", rpcproxy.Rule{Port: dynamic, Nth: 2, Mutate: rpcproxy.FlipStub(40, 0)}, StepGetClass},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(proxy.Events())
			c.rule.Name = c.name
			proxy.Add(c.rule)
			h, err := l.launchTarget(ctx, tgt, spec)
			if h != nil {
				h.Stop(ctx)
			}
			ev := proxy.Events()
			if len(ev) != before+1 {
				t.Fatalf("the proxy altered %d responses, want 1 (events %+v); launch err %v", len(ev)-before, ev, err)
			}
			if !errors.Is(err, adauth.ErrIntegrity) {
				t.Fatalf("err = %v, want adauth.ErrIntegrity", err)
			}
			var le *deploy.LaunchError
			if !errors.As(err, &le) || le.Diagnosis.Code != "rpc-integrity" || le.Step != c.step {
				t.Errorf("launch error %+v, want diagnosis rpc-integrity at step %s", le, c.step)
			}
			if n := ev[len(ev)-1].RequestsAfter; n != 0 {
				t.Errorf("the client sent %d requests on the connection after the altered response", n)
			}
			if p := e.wmi.Processes(); len(p) != 0 {
				t.Errorf("processes created: %+v", p)
			}
		})
	}

	t.Run("unaltered through the proxy", func(t *testing.T) {
		h, err := l.launchTarget(ctx, tgt, spec)
		if err != nil {
			t.Fatalf("launch through the proxy: %v", err)
		}
		if p := e.wmi.Processes(); len(p) != 1 || !p[0].Running || uint32(p[0].PID) != h.PID() {
			t.Errorf("processes %+v, handle pid %d", p, h.PID())
		}
		if err := h.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`auth=16 level=6`).MatchString(e.logs.String()) {
			t.Errorf("winemu logged no Kerberos (auth type 16) bind:\n%s", e.logs.String())
		}
	})
}
