package main

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lanconnect/lanconnect/internal/laps"
	"github.com/lanconnect/lanconnect/internal/laps/lapstest"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/internal/winenc"
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

	// Windows LAPS, encrypted for the readers group: the key comes from
	// GetKey, served in the client namespace from a synthetic root key to
	// lapsreader only. Encrypted for Domain Admins: refused, naming it.
	kds := startKDS(ctx, t, lab.Client, dc)
	encrypt := func(sid string) []byte {
		pt := winenc.EncodeUTF16LE(string(laps.EncodeWindowsJSON(x.Admin.User, x.Admin.Password, time.Now().Add(-time.Hour))))
		blob, err := laps.Protect(kds, sid, pt, laps.ProtectOptions{Time: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return laps.EncodeEncrypted(time.Now().Add(-time.Hour), blob)
	}
	keyServer := []string{"-laps-key-server", lab.Client.Addr.String()}
	set(x.NetBIOSName, map[string][]byte{laps.AttrLegacyPassword: nil, laps.AttrLegacyExpiration: nil,
		laps.AttrEncryptedPassword: encrypt(dc.LAPS.ReadersSID), laps.AttrExpiration: future})
	r = run(dc.LAPS.Reader, append(keyServer, x.NetBIOSName)...)
	checkRunningThenClosed(t, r, x.NetBIOSName, "scm")
	for _, e := range r.of(x.NetBIOSName) {
		if e.State == "Running" {
			if e.raw["credential_source"] != "laps-windows-encrypted" {
				t.Fatalf("encrypted: running with %v", e.raw)
			}
			break
		}
	}
	admins := dc.LAPS.ReadersSID[:strings.LastIndex(dc.LAPS.ReadersSID, "-")] + "-512"
	set(x.NetBIOSName, map[string][]byte{laps.AttrEncryptedPassword: encrypt(admins)})
	r = run(dc.LAPS.Reader, append(keyServer, x.NetBIOSName)...)
	if last := r.last(x.NetBIOSName); last.State != "Failed" || last.Code != "laps-refused" || !strings.Contains(last.Diagnosis, admins) {
		t.Fatalf("refused: last %+v\n%s", last, r.stderr)
	}
	checkNoApplets(t, emus...)
}

// startKDS serves MS-GKDI GetKey (internal/laps.KeyService on winemu) on
// ns's address, port 135, from a synthetic root key: the lab DC's Samba
// serves no GKDI. The key goes to lapsreader, for the readers group's
// security descriptor, at packet privacy only. It returns the root key,
// to encrypt with.
func startKDS(ctx context.Context, t *testing.T, ns *testlab.Netns, dc *testlab.DC) *laps.RootKey {
	t.Helper()
	srv, rk, err := lapstest.KeyServer(dc, "6b2d3c4e-5f60-4a7b-9c8d-0e1f2a3b4c5d", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); srv.Close() })
	// The listeners are opened on a thread inside ns, so they live there.
	if err := inNetns(ns, func() error { return srv.Start(sctx, ns.Addr.String()) }); err != nil {
		t.Fatal(err)
	}
	return rk
}

// inNetns runs f on an OS thread that has entered the network namespace
// ns; sockets f opens belong to ns. The thread is discarded afterwards
// (its goroutine exits locked), so no other goroutine ever runs in ns.
func inNetns(ns *testlab.Netns, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		fd, err := unix.Open("/run/netns/"+ns.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	return <-done
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}
