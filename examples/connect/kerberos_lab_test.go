package main

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestLabKerberos runs connect in the lab's client namespace (its DNS is
// the DC's) against two domain members that refuse NTLM, on a domain with
// NTLM disabled: `-auth kerberos -user DOMAIN\Administrator FQDN...` logs
// on with Kerberos (NDJSON auth "kerberos"), copies the applet over the
// Kerberos SMB session and reaches the launch, where Samba's SCM cannot
// create services; cleanup leaves nothing on the members' disks; the whole
// run makes one AS exchange. A ccache or a keytab logs on without the
// password. With winemu (Kerberos only) on a member, the SCM over TCP
// binds with Kerberos and connect reaches Running. By address, -auth
// kerberos fails before anything is sent, and auto takes NTLM, which the
// member refuses with the advice to use Kerberos.
func TestLabKerberos(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{
		DC: &testlab.DCSpec{NoNTLM: true},
		Targets: []testlab.TargetSpec{
			{DomainMember: true, Variant: testlab.NTLMDisabled},
			{DomainMember: true, Variant: testlab.NTLMDisabled},
		},
		Client: true,
	})
	dc := lab.DC
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	user := dc.Domain + `\` + dc.Admin.User
	base := []string{"-console", net.JoinHostPort(lab.Client.Addr.String(), "0"), "-applet", applet, "-checkin-timeout", "30s", "-method", "scm", "-user", user}

	t.Run("kerberos to two members by DNS name", func(t *testing.T) {
		hosts := []string{lab.Targets[0].FQDN, lab.Targets[1].FQDN}
		r := runConnectIn(ctx, t, lab.Client, dc.Admin.Password, append(append(base, "-auth", "kerberos"), hosts...)...)
		for i, h := range hosts {
			evs := r.of(h)
			last := r.last(h)
			if last.State != "Failed" || last.Step != "launch" {
				t.Fatalf("%s: events %s, last %+v\nstderr:\n%s", h, brief(evs), last, r.stderr)
			}
			auth := ""
			copied := false
			for _, e := range evs {
				if a, ok := e.raw["auth"].(string); ok {
					auth = a
				}
				if e.Event == "progress" && e.raw["bytes"] != nil && e.raw["bytes"] == e.raw["total"] && e.raw["total"].(float64) > 0 {
					copied = true
				}
			}
			if auth != "kerberos" || !copied {
				t.Fatalf("%s: auth %q, applet copied %v; want kerberos and a complete copy\nevents %s", h, auth, copied, brief(evs))
			}
			// The copy happened over Kerberos and cleanup removed it: the
			// journal undid the file, and the member's ADMIN$ holds none.
			if last.Cleanup == nil || len(last.Cleanup.Left) != 0 || !strings.Contains(strings.Join(last.Cleanup.Undone, " "), "lcapplet") {
				t.Errorf("%s: cleanup %+v, want the applet's file undone and nothing left", h, last.Cleanup)
			}
			var left []string
			_ = filepath.WalkDir(lab.Targets[i].AdminDir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.Contains(strings.ToLower(d.Name()), "lcapplet") {
					left = append(left, p)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("%s: the member's disk still holds %v", h, left)
			}
		}
		// One TGT for the whole run: one AS exchange (two AS-REQs, the
		// first answered "pre-authentication required"), and per member
		// one TGS exchange for cifs/ (SMB) and one for host/ (the RPC
		// binds of the preflight and the SCM, Kerberos-sealed on the
		// pipes).
		m := regexp.MustCompile(`kerberos KDC traffic" as_exchanges=(\d+) as_reqs=(\d+) tgs_reqs=(\d+)`).FindStringSubmatch(r.stderr)
		if m == nil || m[1] != "1" || m[2] != "2" || m[3] != "4" {
			t.Fatalf("KDC traffic %q, want 1 AS exchange, 2 AS-REQs, 4 TGS-REQs\nstderr:\n%s", m, r.stderr)
		}
		// The RPC on the pipes rode Kerberos: the SCM was opened (Samba
		// then refuses to create the service), and the preflight read
		// the registry.
		if !strings.Contains(r.stderr, "RCreateServiceW") || strings.Contains(r.stderr, "preflight failed") {
			t.Errorf("want the preflight to read the registry and the SCM to reach CreateService over Kerberos RPC\nstderr:\n%s", r.stderr)
		}
		t.Logf("two members: %s; %s", m[0], brief(r.of(hosts[0])))
	})

	// A ccache made by MIT kinit (no -user: the account is its principal;
	// no password sent, no AS exchange) and a keytab of the account's keys
	// (samba-tool exportkeytab) log on with Kerberos too.
	t.Run("ccache and keytab", func(t *testing.T) {
		dir := t.TempDir()
		conf := filepath.Join(dir, "krb5.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("[libdefaults]\n\tdefault_realm = %s\n\tdns_lookup_kdc = false\n\trdns = false\n[realms]\n\t%s = {\n\t\tkdc = %s\n\t}\n", dc.Realm, dc.Realm, dc.Addr)), 0o644); err != nil {
			t.Fatal(err)
		}
		ccache := filepath.Join(dir, "ccache")
		cmd := lab.Client.Command(ctx, "kinit", dc.Admin.User+"@"+dc.Realm)
		cmd.Env = append(os.Environ(), "KRB5_CONFIG="+conf, "KRB5CCNAME=FILE:"+ccache)
		cmd.Stdin = strings.NewReader(dc.Admin.Password + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kinit: %v\n%s", err, out)
		}
		keytab := filepath.Join(dir, "admin.keytab")
		if out, err := dc.SambaTool(ctx, "domain", "exportkeytab", keytab, "--principal="+dc.Admin.User); err != nil {
			t.Fatalf("exportkeytab: %v\n%s", err, out)
		}
		h := lab.Targets[0].FQDN
		noUser := []string{"-console", net.JoinHostPort(lab.Client.Addr.String(), "0"), "-applet", applet, "-checkin-timeout", "30s", "-method", "scm"}
		for _, c := range []struct {
			args []string
			as   string
		}{
			{append(noUser, "-auth", "kerberos", "-ccache", "FILE:"+ccache, h), "0"},
			{append(noUser, "-auth", "kerberos", "-keytab", keytab, "-user", user, h), "1"},
		} {
			// No password anywhere: the environment's is a decoy that
			// must not be needed.
			r := runConnectIn(ctx, t, lab.Client, "decoy-"+lab.ID, c.args...)
			last := r.last(h)
			auth, _ := last.raw["auth"].(string)
			m := regexp.MustCompile(`kerberos KDC traffic" as_exchanges=(\d+)`).FindStringSubmatch(r.stderr)
			if last.State != "Failed" || last.Step != "launch" || auth != "kerberos" || m == nil || m[1] != c.as {
				t.Fatalf("%v: last %+v (auth %q), KDC %q, want launch reached with kerberos and %s AS exchanges\nstderr:\n%s", c.args, last, auth, m, c.as, r.stderr)
			}
		}
	})

	// winemu on the member with the member's host/ keys and NTLM off (as
	// a Windows SCM behind a domain that refuses NTLM): after Samba's SCM
	// cannot create the service on the pipe, the SCM over TCP binds with
	// Kerberos to host/FQDN (sealed), the applet starts and checks in:
	// Running, then closed cleanly (exit 0).
	// winemu on the member with the member's host/ keys and NTLM off (as
	// a Windows computer behind a domain that refuses NTLM).
	m := lab.Targets[0]
	kt := filepath.Join(t.TempDir(), "host.keytab")
	if err := m.ExportKeytab(ctx, "host/"+m.FQDN, kt); err != nil {
		t.Fatal(err)
	}
	krbWinemu := func(t *testing.T, extra ...string) *testlab.Process {
		t.Helper()
		bin := buildBin(t, "winemu", "github.com/lanconnect/lanconnect/internal/winemu/cmd/winemu")
		p, err := m.Start(ctx, bin, append([]string{"-listen", m.Addr.String(), "-root", m.AdminDir, "-user", dc.Admin.User,
			"-name", m.NetBIOSName, "-workgroup", m.Workgroup, "-keytab", kt, "-no-ntlm"}, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop() })
		waitPort(t, net.JoinHostPort(m.Addr.String(), "135"), p)
		return p
	}
	// runKerberos runs connect -auth kerberos to the member and wants
	// Running with auth "kerberos", a clean close (exit 0), and winemu's
	// log line of iface's calls with auth type 16 (Kerberos) at level 6
	// (PKT_PRIVACY).
	runKerberos := func(t *testing.T, p *testlab.Process, iface string, args ...string) {
		t.Helper()
		r := runConnectIn(ctx, t, lab.Client, dc.Admin.Password, append(append(base, "-auth", "kerberos"), append(args, m.FQDN)...)...)
		evs := r.of(m.FQDN)
		running, auth := false, ""
		for _, e := range evs {
			if e.State == "Running" {
				running = true
				if a, ok := e.raw["auth"].(string); ok {
					auth = a
				}
			}
		}
		wlog := tailFile(p.LogPath())
		if r.code != 0 || !running || auth != "kerberos" || !regexp.MustCompile(`iface=`+iface+` .*user=Administrator auth=16 level=6`).MatchString(wlog) {
			t.Fatalf("exit %d, events %s, Running auth %q; want Running with kerberos\nstderr:\n%s\nwinemu:\n%s", r.code, brief(evs), auth, r.stderr, wlog)
		}
	}

	// After Samba's SCM cannot create the service on the pipe, the SCM
	// over TCP binds with Kerberos to host/FQDN (sealed); the applet
	// starts and checks in.
	t.Run("Running through SCM over TCP with Kerberos", func(t *testing.T) {
		p := krbWinemu(t)
		defer p.Stop()
		runKerberos(t, p, "svcctl")
	})

	// WMI: activation and IWbem calls bind with Kerberos to RPCSS/FQDN
	// (the machine account's key, as the host/ entry of the keytab).
	t.Run("Running through WMI with Kerberos", func(t *testing.T) {
		p := krbWinemu(t, "-wmi", "-keytab-principal", "host/"+m.FQDN)
		defer p.Stop()
		runKerberos(t, p, "IWbemServices", "-method", "wmi")
	})

	t.Run("kerberos by address: needs the DNS name", func(t *testing.T) {
		addr := lab.Targets[0].Addr.String()
		r := runConnectIn(ctx, t, lab.Client, dc.Admin.Password, append(append(base, "-auth", "kerberos"), addr)...)
		if last := r.last(addr); r.code != 1 || last.State != "Failed" || last.Code != "kerberos-needs-dns-name" || !strings.Contains(last.Diagnosis, "DNS name") {
			t.Fatalf("exit %d, last %+v\nstderr:\n%s", r.code, last, r.stderr)
		}
	})

	// connect -check logs on as connect does under each -auth policy, and
	// changes nothing on the member.
	t.Run("check under -auth kerberos and ntlm", func(t *testing.T) {
		mem := lab.Targets[1]
		before := takeSnapshot(ctx, t, mem)
		code, c := checkHostIn(ctx, t, lab.Client, user, dc.Admin.Password, mem.FQDN, "-auth", "kerberos", "-method", "scm")
		if code != 0 || !c.Ready || c.Auth != "kerberos" || c.Launch.Value != "scm" {
			t.Fatalf("-auth kerberos: exit %d, auth %q, launch %+v", code, c.Auth, c.Launch)
		}
		wantItem(t, "admin", c.Admin, "ok", "administrator", "")
		wantItem(t, "ntlm_level", c.NTLMLevel, "unknown", "not used (kerberos)", "")
		code, c = checkHostIn(ctx, t, lab.Client, user, dc.Admin.Password, mem.FQDN, "-auth", "ntlm", "-method", "scm")
		if code != 1 || c.Ready {
			t.Fatalf("-auth ntlm: exit %d, ready %v", code, c.Ready)
		}
		wantItem(t, "ntlm_level", c.NTLMLevel, "fail", "refused", "ntlm-blocked")
		before.unchanged(ctx, t)
	})

	t.Run("auto by address: NTLM, blocked, advice to use Kerberos", func(t *testing.T) {
		addr := lab.Targets[0].Addr.String()
		r := runConnectIn(ctx, t, lab.Client, dc.Admin.Password, append(base, addr)...)
		if last := r.last(addr); r.code != 1 || last.Code != "ntlm-blocked" || !strings.Contains(last.Diagnosis, "-auth kerberos") {
			t.Fatalf("exit %d, last %+v\nstderr:\n%s", r.code, last, r.stderr)
		}
	})
}

// tailFile returns the last 16 KB of a log file.
func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 16384 {
		b = b[len(b)-16384:]
	}
	return string(b)
}
