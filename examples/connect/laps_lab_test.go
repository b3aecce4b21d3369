package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/laps"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestLabLAPS runs `connect -laps` in the lab's client namespace as the
// technician lapsreader, whose domain account no target knows: each
// target's only administrator password is the one on its computer object
// (legacy LAPS for one, Windows LAPS for the other). Then lapsdenied, who
// may not read the attribute, and the other diagnoses. No output of
// connect (NDJSON and -v logs) ever holds a LAPS password.
func TestLabLAPS(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	if err := testlab.AvailableDC(); err != nil {
		t.Skip(err)
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{LAPS: true}, Client: true,
		Targets: []testlab.TargetSpec{{Name: "LAPSLEG"}, {Name: "LAPSWIN"}, {Name: "LAPSX"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dc := lab.DC
	leg, win, x := lab.Targets[0], lab.Targets[1], lab.Targets[2]
	future := []byte(laps.Filetime(time.Now().Add(7 * 24 * time.Hour)))
	past := []byte(laps.Filetime(time.Now().Add(-time.Hour)))
	set := func(name string, attrs map[string][]byte) {
		t.Helper()
		if _, err := dc.SetLAPS(ctx, name, attrs); err != nil {
			t.Fatalf("SetLAPS %s: %v", name, err)
		}
	}
	var emus []*emu
	for _, tg := range lab.Targets {
		emus = append(emus, startWinemu(ctx, t, tg, tg.Admin.Password))
		if err := dc.AddHostRecord(ctx, tg.NetBIOSName, tg.Addr); err != nil {
			t.Fatal(err)
		}
	}
	set(leg.NetBIOSName, map[string][]byte{laps.AttrLegacyPassword: []byte(leg.Admin.Password), laps.AttrLegacyExpiration: future})
	set(win.NetBIOSName, map[string][]byte{laps.AttrPassword: laps.EncodeWindowsJSON(win.Admin.User, win.Admin.Password, time.Now()), laps.AttrExpiration: future})
	set(x.NetBIOSName, map[string][]byte{})
	secrets := []string{leg.Admin.Password, win.Admin.Password, x.Admin.Password}

	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	run := func(tech testlab.Account, hosts ...string) runResult {
		t.Helper()
		args := []string{"-console", net.JoinHostPort(lab.Client.Addr.String(), "0"), "-applet", applet, "-checkin-timeout", "30s", "-method", "scm",
			"-laps", "-ldap", "ldaps://" + dc.Addr.String(), "-ldap-ca", dc.CAFile, "-ldap-server-name", dc.Hostname,
			"-laps-account", leg.Admin.User, "-user", dc.Domain + `\` + tech.User}
		r := runConnectIn(ctx, t, lab.Client, tech.Password, append(args, hosts...)...)
		for _, s := range secrets {
			if strings.Contains(r.stderr, s) {
				t.Fatalf("a LAPS password appears in connect's log:\n%s", r.stderr)
			}
			for _, e := range r.events {
				if strings.Contains(fmt.Sprint(e.raw), s) {
					t.Fatalf("a LAPS password appears in connect's NDJSON: %v", e.raw)
				}
			}
		}
		return r
	}

	// lapsreader may read both: Running as each computer's own account.
	r := run(dc.LAPS.Reader, leg.NetBIOSName, win.NetBIOSName)
	for name, want := range map[string]string{leg.NetBIOSName: "laps-legacy", win.NetBIOSName: "laps-windows"} {
		checkRunningThenClosed(t, r, name, "scm")
		// The event that reaches Running carries the session's result.
		for _, e := range r.of(name) {
			if e.State == "Running" {
				if e.raw["credential_source"] != want || !strings.HasPrefix(toString(e.raw["account"]), `.\`) {
					t.Fatalf("%s: running with %v as %v, want %s: %v", name, e.raw["credential_source"], e.raw["account"], want, e.raw)
				}
				break
			}
		}
	}

	// lapsdenied may not read the attribute; LAPSX has none.
	r = run(dc.LAPS.Denied, leg.NetBIOSName, x.NetBIOSName)
	for name, code := range map[string]string{leg.NetBIOSName: "laps-not-readable", x.NetBIOSName: "laps-no-attribute"} {
		last := r.last(name)
		if last.State != "Failed" || last.Code != code || !strings.Contains(last.Diagnosis, "LAPS") || r.code != 1 {
			t.Fatalf("%s: exit %d, last %+v\n%s", name, r.code, last, r.stderr)
		}
	}

	// An expired password, and a computer the directory does not know.
	set(x.NetBIOSName, map[string][]byte{laps.AttrLegacyPassword: []byte(x.Admin.Password), laps.AttrLegacyExpiration: past})
	r = run(dc.LAPS.Reader, x.NetBIOSName)
	if last := r.last(x.NetBIOSName); last.State != "Failed" || last.Code != "laps-expired" || !strings.Contains(last.Diagnosis, "LAPS") {
		t.Fatalf("expired: last %+v\n%s", last, r.stderr)
	}
	checkNoApplets(t, emus...)
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}
