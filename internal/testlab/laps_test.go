package testlab_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/laps"
	"github.com/lanconnect/lanconnect/internal/laps/lapstest"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/winenc"
)

// TestLAPS reads each LAPS format from the lab's Samba AD DC through the
// SDK's LDAP reader: as a member of the readers group, who gets every
// password (the encrypted one through GetKey, served with a synthetic
// root key by winemu), and as an ordinary user, from whom the DC
// withholds the confidential attributes (ErrNotReadable). It also gets
// the expired, absent and refused diagnoses from the real directory, and
// checks that no password reaches an error or a log.
func TestLAPS(t *testing.T) {
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{LAPS: true}, Targets: []testlab.TargetSpec{{}}})
	dc := lab.DC
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	now := time.Now()
	future, past := laps.Filetime(now.Add(7*24*time.Hour)), laps.Filetime(now.Add(-time.Hour))

	// The synthetic KDS root key, and GetKey served from it to the
	// readers group only.
	var srvLogs testutil.LockedBuffer
	srv, rk, err := lapstest.KeyServer(dc, "5a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", t.TempDir(),
		slog.New(slog.NewTextHandler(&srvLogs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	kdsIP := testutil.LoopbackIP()
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	if err := srv.Start(sctx, kdsIP); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	secrets := map[string]string{"LAPSV1": "v1-" + rand.Text(), "LAPSV2": "v2-" + rand.Text(), "LAPSV3": "v3-" + rand.Text(),
		"LAPSOLD": "old-" + rand.Text(), "LAPSOTHER": "other-" + rand.Text()}
	encrypt := func(name, sid string) []byte {
		pt := winenc.EncodeUTF16LE(string(laps.EncodeWindowsJSON("LapsAdmin", secrets[name], now.Add(-time.Hour))))
		blob, err := laps.Protect(rk, sid, pt, laps.ProtectOptions{Time: now.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return laps.EncodeEncrypted(now.Add(-time.Hour), blob)
	}
	set := map[string]map[string][]byte{
		"LAPSV1":  {laps.AttrLegacyPassword: []byte(secrets["LAPSV1"]), laps.AttrLegacyExpiration: []byte(future)},
		"LAPSV2":  {laps.AttrPassword: laps.EncodeWindowsJSON("LapsAdmin", secrets["LAPSV2"], now), laps.AttrExpiration: []byte(future)},
		"LAPSV3":  {laps.AttrEncryptedPassword: encrypt("LAPSV3", dc.LAPS.ReadersSID), laps.AttrExpiration: []byte(future)},
		"LAPSOLD": {laps.AttrLegacyPassword: []byte(secrets["LAPSOLD"]), laps.AttrLegacyExpiration: []byte(past)},
		// Encrypted for Domain Admins (RID 512), which the reader is not in.
		"LAPSOTHER": {laps.AttrEncryptedPassword: encrypt("LAPSOTHER", domainSID(dc.LAPS.ReadersSID)+"-512"), laps.AttrExpiration: []byte(future)},
		"LAPSNONE":  {},
	}
	for name, attrs := range set {
		if _, err := dc.SetLAPS(ctx, name, attrs); err != nil {
			t.Fatalf("SetLAPS %s: %v", name, err)
		}
	}

	var logs testutil.LockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []string
	reader := func(acct testlab.Account) *laps.Reader {
		c, err := dc.DialLDAP(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		creds, err := adauth.Parse(dc.Domain+`\`+acct.User, acct.Password)
		if err != nil {
			t.Fatal(err)
		}
		return &laps.Reader{Directory: laps.LDAPSearcher{Client: c}, BaseDN: dc.BaseDN, Logger: logger,
			Keys: &laps.KeyClient{Host: kdsIP, Credentials: creds, Logger: logger}}
	}

	allowed := reader(dc.LAPS.Reader)
	for name, want := range map[string]laps.Format{"LAPSV1": laps.Legacy, "LAPSV2": laps.Windows, "LAPSV3": laps.WindowsEncrypted} {
		p, err := allowed.ReadComputer(ctx, name)
		if err != nil {
			t.Fatalf("%s as %s: %v\nKDS log:\n%s", name, dc.LAPS.Reader.User, err, srvLogs.String())
		}
		if p.Format != want || p.Secret != secrets[name] || !strings.EqualFold(p.DN, "CN="+name+","+dc.LAPS.OU) {
			t.Fatalf("%s: got %v from %s", name, p, p.DN)
		}
		if want != laps.Legacy && p.Account != "LapsAdmin" {
			t.Fatalf("%s: account %q", name, p.Account)
		}
	}
	expect := func(r *laps.Reader, name string, target error, as any) {
		t.Helper()
		p, err := r.ReadComputer(ctx, name)
		if !errors.Is(err, target) || (as != nil && !errors.As(err, as)) {
			t.Fatalf("%s: got %v (%T), want %v", name, err, err, target)
		}
		if p != nil && target != laps.ErrExpired {
			t.Fatalf("%s: a password came with %v", name, err)
		}
		errs = append(errs, err.Error())
	}
	var ee *laps.ExpiredError
	expect(allowed, "LAPSOLD", laps.ErrExpired, &ee)
	expect(allowed, "LAPSNONE", laps.ErrNoAttribute, nil)
	expect(allowed, "NOSUCHPC", laps.ErrComputerNotFound, nil)
	var re *laps.RefusedError
	expect(allowed, "LAPSOTHER", laps.ErrDecryptionRefused, &re)
	if !strings.HasSuffix(re.SID, "-512") || !strings.Contains(re.Error(), re.SID) {
		t.Fatalf("refusal names %q: %v", re.SID, re)
	}

	denied := reader(dc.LAPS.Denied)
	for _, name := range []string{"LAPSV1", "LAPSV2", "LAPSV3"} {
		var nr *laps.NotReadableError
		expect(denied, name, laps.ErrNotReadable, &nr)
	}
	expect(denied, "LAPSNONE", laps.ErrNoAttribute, nil)

	// A lab target whose only administrator password is the one on its
	// computer object: read it as the reader and log on with it as the
	// local account the JSON names (what `connect -laps` will do).
	tg := lab.Targets[0]
	if _, err := dc.SetLAPS(ctx, tg.NetBIOSName, map[string][]byte{
		laps.AttrPassword:   laps.EncodeWindowsJSON(tg.Admin.User, tg.Admin.Password, now),
		laps.AttrExpiration: []byte(future),
	}); err != nil {
		t.Fatal(err)
	}
	p, err := allowed.ReadComputer(ctx, tg.NetBIOSName)
	if err != nil {
		t.Fatal(err)
	}
	local, err := adauth.Parse(`.\`+p.Account, p.Secret)
	if err != nil {
		t.Fatal(err)
	}
	var a adauth.SMBAuthenticator
	g, err := a.Authenticate(ctx, tg.Addr.String(), local)
	if err != nil {
		t.Fatalf("logon to %s with its LAPS password: %v", tg.NetBIOSName, err)
	}
	if !g.Facts.LocalAccount {
		t.Errorf("facts %+v: not a local account", g.Facts)
	}
	g.Close()
	if _, err := denied.ReadComputer(ctx, tg.NetBIOSName); !errors.Is(err, laps.ErrNotReadable) {
		t.Fatalf("%s as %s: %v", tg.NetBIOSName, dc.LAPS.Denied.User, err)
	}
	secrets["target"] = tg.Admin.Password

	errs = append(errs, logs.String(), srvLogs.String())
	for _, s := range errs {
		for _, secret := range append(mapValues(secrets), dc.LAPS.Reader.Password, dc.LAPS.Denied.Password) {
			if strings.Contains(s, secret) {
				t.Fatalf("a secret leaked into %q", s)
			}
		}
	}
}

// domainSID returns the domain part of a domain account's SID.
func domainSID(sid string) string { return sid[:strings.LastIndex(sid, "-")] }

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
