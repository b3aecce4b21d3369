package adauth

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

func labCreds(t *testing.T, a testlab.Account, local bool) Credentials {
	t.Helper()
	acct := a.User
	if local {
		acct = `.\` + a.User
	}
	c, err := Parse(acct, a.Password)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func labTarget(t *testing.T, lab *testlab.Lab, v testlab.Variant) *testlab.Target {
	t.Helper()
	for _, tg := range lab.Targets {
		if tg.Variant == v && !tg.NoSMB {
			return tg
		}
	}
	t.Fatalf("no %v target", v)
	return nil
}

// TestAuthenticateLab runs the Authenticator against real Samba targets.
func TestAuthenticateLab(t *testing.T) {
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{
		{}, {Variant: testlab.SigningMandatory}, {Variant: testlab.EncryptRequired},
		{Variant: testlab.GuestOnly}, {Variant: testlab.NTLMDisabled}, {NoSMB: true},
		{Variant: testlab.MaxSMB300}, {Variant: testlab.MaxSMB210}, {Variant: testlab.SMB139Only},
	}})
	std := labTarget(t, lab, testlab.Standard)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var a SMBAuthenticator

	// WithReadOnly proves administrator rights without writing: the
	// target's shares and registry are byte for byte as before, where
	// the ordinary probe file changes ADMIN$ (its directory's
	// modification time) even though it is deleted at once.
	t.Run("read-only admin proof", func(t *testing.T) {
		admin := labCreds(t, std.Admin, false)
		warm, err := a.Authenticate(ctx, std.Addr.String(), admin) // Samba's first svcctl start writes its registry
		if err != nil {
			t.Fatal(err)
		}
		warm.Close()
		before, err := std.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		g, err := a.Authenticate(WithReadOnly(ctx), std.Addr.String(), admin)
		if err != nil {
			t.Fatal(err)
		}
		checks := g.Facts.Checks
		g.Close()
		if len(checks) != 2 || checks[0].Name != CheckAdminShareWrite || !checks[0].Passed || !strings.HasPrefix(checks[0].Detail, "read-only") || checks[1].Name != CheckSCMCreate || !checks[1].Passed {
			t.Fatalf("checks %+v", checks)
		}
		after, err := std.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := testlab.Diff(before, after); d != "" {
			t.Fatalf("the read-only proof changed the target:\n%s", d)
		}
		// The snapshot sees what the ordinary proof does.
		g, err = a.Authenticate(ctx, std.Addr.String(), admin)
		if err != nil {
			t.Fatal(err)
		}
		g.Close()
		if probe, _ := std.Snapshot(ctx); testlab.Diff(after, probe) == "" {
			t.Fatal("the snapshot does not see the probe file's create and delete")
		}
		// A plain user is refused, with what SMB negotiated kept.
		_, err = a.Authenticate(WithReadOnly(ctx), std.Addr.String(), labCreds(t, std.User, false))
		var ae *AuthError
		if !errors.As(err, &ae) || !errors.Is(err, ErrNotAdmin) || ae.Facts == nil || ae.Facts.Dialect != "3.1.1" || ae.Facts.Transport != TransportTCP445 {
			t.Fatalf("user: %v (facts %+v)", err, ae)
		}
	})

	t.Run("dialects and downgrade", func(t *testing.T) {
		for _, c := range []struct {
			v                    testlab.Variant
			dialect              string
			validated, encrypted bool
		}{{testlab.Standard, "3.1.1", true, true}, {testlab.MaxSMB300, "3.0", true, true}, {testlab.MaxSMB210, "2.1", false, false}} {
			tg := labTarget(t, lab, c.v)
			g, err := a.Authenticate(ctx, tg.Addr.String(), labCreds(t, tg.Admin, false))
			if err != nil {
				t.Fatalf("%v: %v", c.v, err)
			}
			f := g.Facts
			g.Close()
			if f.Dialect != c.dialect || f.NegotiationValidated != c.validated || f.Encrypted != c.encrypted || f.EncryptionMissing == c.encrypted || f.Transport != TransportTCP445 {
				t.Fatalf("%v: %+v", c.v, f)
			}
		}
		old := labTarget(t, lab, testlab.MaxSMB210)
		for _, b := range []SMBAuthenticator{{MinDialect: 0x0300}, {Encryption: EncryptRequired}} {
			_, err := b.Authenticate(ctx, old.Addr.String(), labCreds(t, old.Admin, false))
			var ae *AuthError
			want, code := ErrDowngrade, diag.SMBDowngrade
			if b.Encryption == EncryptRequired {
				want, code = ErrEncryption, diag.EncryptionUnsupported
			}
			if !errors.As(err, &ae) || !errors.Is(err, want) || ae.Diagnosis.Code != code || ShouldPrompt(err) {
				t.Fatalf("%+v: %v", b, err)
			}
		}
	})

	t.Run("admin granted", func(t *testing.T) {
		// The RID lookup is best effort within 5 s, and the first pipe a
		// fresh Samba target serves waits for samba-dcerpcd to start, which
		// takes longer than that on a loaded machine (CI saw RID 0). Windows
		// serves lsarpc at once. So a logon whose lookup ran out of time is
		// tried again, within a deadline, and each try is logged.
		var g *Grant
		deadline := time.Now().Add(90 * time.Second)
		for try := 1; ; try++ {
			t0 := time.Now()
			var err error
			g, err = a.Authenticate(ctx, std.Addr.String(), labCreds(t, std.Admin, false))
			if err != nil {
				t.Fatal(err)
			}
			if g.Facts.AccountRID != 0 || time.Now().After(deadline) {
				break
			}
			t.Logf("try %d: no RID after %v (Samba's RPC daemon starting?); trying again", try, time.Since(t0).Round(time.Millisecond))
			_ = g.Close()
		}
		defer g.Close()
		f := g.Facts
		if len(f.Checks) != 2 || !f.Checks[0].Passed || !f.Checks[1].Passed || f.Checks[0].Name != CheckAdminShareWrite || f.Checks[1].Name != CheckSCMCreate {
			t.Fatalf("checks: %+v", f.Checks)
		}
		if !f.Signed || !f.Encrypted || f.Dialect != "3.1.1" || !strings.EqualFold(f.Server.NetBIOSName, std.NetBIOSName) || !f.LocalAccount || f.ProbeLeftover != "" {
			t.Fatalf("facts: %+v", f)
		}
		// The probe file is gone from the server's disk.
		left, _ := filepath.Glob(filepath.Join(std.AdminDir, "lanconnect-probe-*"))
		if len(left) != 0 {
			t.Fatalf("probe files left: %v", left)
		}
		// The grant's session carries more pipes.
		p, err := g.OpenPipe(ctx, "winreg")
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Close()
		// A local account: its RID was looked up over \pipe\lsarpc. The lab
		// admin is an ordinary account in BUILTIN\Administrators.
		if f.AccountRID == 0 || f.AccountRID == 500 || f.BuiltinAdministrator {
			t.Fatalf("RID %d builtin %v", f.AccountRID, f.BuiltinAdministrator)
		}
		t.Logf("facts: %+v", f)
	})

	t.Run("local account form", func(t *testing.T) {
		g, err := a.Authenticate(ctx, std.Addr.String(), labCreds(t, std.Admin, true))
		if err != nil {
			t.Fatal(err)
		}
		_ = g.Close()
	})

	t.Run("non-admin", func(t *testing.T) {
		_, err := a.Authenticate(ctx, std.Addr.String(), labCreds(t, std.User, false))
		var ae *AuthError
		if !errors.Is(err, ErrNotAdmin) || !errors.As(err, &ae) || ae.Step != StepAdminShare || !ShouldPrompt(err) {
			t.Fatalf("err = %v", err)
		}
		// A local account: the diagnosis names UAC remote restrictions.
		if ae.Diagnosis.Code != diag.UACRemote || !strings.Contains(ae.Diagnosis.Fix, "LocalAccountTokenFilterPolicy") {
			t.Fatalf("diagnosis: %+v", ae.Diagnosis)
		}
		t.Logf("%v\n  fix: %s", err, ae.Diagnosis.Fix)
	})

	t.Run("non-admin denied by the SCM", func(t *testing.T) {
		// The ADMIN$ check stops an ordinary user first; prove that the SCM
		// check on its own also refuses it.
		c := labCreds(t, std.User, false)
		s, err := smbconn.Dial(ctx, std.Addr.String(), smbconn.Auth{User: c.User, Password: std.User.Password}, smbconn.Options{})
		if err != nil {
			t.Fatal(err)
		}
		g := &Grant{Addr: std.Addr.String(), Credentials: c, session: s}
		defer g.Close()
		ae := a.checkSCM(ctx, g)
		if ae == nil || !errors.Is(ae, ErrNotAdmin) || ae.Step != StepSCM {
			t.Fatalf("SCM check for a user: %v", ae)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		c := labCreds(t, std.Admin, false).WithPassword(std.Admin.Password + "-wrong")
		_, err := a.Authenticate(ctx, std.Addr.String(), c)
		var ae *AuthError
		if !errors.Is(err, ErrLogonFailure) || !errors.Is(err, smbconn.StatusLogonFailure) || !errors.As(err, &ae) || ae.Diagnosis.Code != diag.LogonFailure || !ShouldPrompt(err) {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), std.Admin.Password) {
			t.Fatal("password in error")
		}
	})

	t.Run("guest only", func(t *testing.T) {
		tg := labTarget(t, lab, testlab.GuestOnly)
		_, err := a.Authenticate(ctx, tg.Addr.String(), labCreds(t, tg.Admin, true))
		var ae *AuthError
		if !errors.Is(err, ErrGuest) || !errors.As(err, &ae) || ae.Diagnosis.Code != diag.GuestOnly || !strings.Contains(ae.Diagnosis.Fix, "Classic") {
			t.Fatalf("err = %v", err)
		}
		// A workgroup computer: every local account becomes Guest.
		if ShouldPrompt(err) {
			t.Fatal("prompt on a workgroup guest-only computer")
		}
	})

	t.Run("ntlm blocked", func(t *testing.T) {
		tg := labTarget(t, lab, testlab.NTLMDisabled)
		_, err := a.Authenticate(ctx, tg.Addr.String(), labCreds(t, tg.Admin, false))
		if !errors.Is(err, ErrNTLMBlocked) || ShouldPrompt(err) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("signing mandatory", func(t *testing.T) {
		tg := labTarget(t, lab, testlab.SigningMandatory)
		g, err := (&SMBAuthenticator{Encryption: EncryptIfServerAsks}).Authenticate(ctx, tg.Addr.String(), labCreds(t, tg.Admin, false))
		if err != nil {
			t.Fatal(err)
		}
		if !g.Facts.ServerRequiresSigning || !g.Facts.Signed || g.Facts.Encrypted {
			t.Fatalf("%+v", g.Facts)
		}
		_ = g.Close()
	})

	t.Run("encryption required", func(t *testing.T) {
		tg := labTarget(t, lab, testlab.EncryptRequired)
		g, err := (&SMBAuthenticator{Encryption: EncryptRequired}).Authenticate(ctx, tg.Addr.String(), labCreds(t, tg.Admin, false))
		if err != nil {
			t.Fatal(err)
		}
		if !g.Facts.Encrypted {
			t.Fatalf("%+v", g.Facts)
		}
		_ = g.Close()
	})

	t.Run("port refused", func(t *testing.T) {
		var tg *testlab.Target
		for _, x := range lab.Targets {
			if x.NoSMB {
				tg = x
			}
		}
		_, err := a.Authenticate(ctx, tg.Addr.String(), labCreds(t, std.Admin, false))
		var ae *AuthError
		if !errors.Is(err, ErrUnreachable) || !errors.As(err, &ae) || ae.Diagnosis.Code != diag.FirewallRefused || ShouldPrompt(err) {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(ae.Diagnosis.Fix, "File and Printer Sharing") {
			t.Fatalf("fix: %s", ae.Diagnosis.Fix)
		}
		// 139 was tried too, and the diagnosis says so.
		if !strings.Contains(ae.Diagnosis.Summary, "TCP port 139") || !strings.Contains(ae.Diagnosis.Fix, "TCP 139") || !strings.Contains(err.Error(), ":139") {
			t.Fatalf("diagnosis does not name 139: %v / %v", ae.Diagnosis, err)
		}
		// Without the fallback, 139 is neither tried nor named.
		_, err = (&SMBAuthenticator{Transports: []string{TransportTCP445}}).Authenticate(ctx, tg.Addr.String(), labCreds(t, std.Admin, false))
		if !errors.As(err, &ae) || ae.Diagnosis.Code != diag.FirewallRefused || strings.Contains(ae.Diagnosis.Summary, "139") || strings.Contains(err.Error(), ":139") {
			t.Fatalf("445 only: %v / %v", err, ae.Diagnosis)
		}
	})

	t.Run("139 only", func(t *testing.T) {
		tg := labTarget(t, lab, testlab.SMB139Only)
		// The admin checks write a probe file to ADMIN$ and open
		// \pipe\svcctl: file access and pipes ride the session on 139.
		nctx := WithExpectedName(ctx, tg.NetBIOSName)
		g, err := a.Authenticate(nctx, tg.Addr.String(), labCreds(t, tg.Admin, false))
		if err != nil {
			t.Fatalf("over 139: %v", err)
		}
		f := g.Facts
		_ = g.Close()
		if f.Transport != TransportNBT139 || f.Dialect != "3.1.1" || !f.Signed || !f.Encrypted || len(f.Checks) != 2 || !f.Checks[0].Passed || !f.Checks[1].Passed {
			t.Fatalf("facts over 139: %+v", f)
		}
		// 139 only when asked: 445 alone fails.
		_, err = (&SMBAuthenticator{Transports: []string{TransportTCP445}}).Authenticate(ctx, tg.Addr.String(), labCreds(t, tg.Admin, false))
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("445 only on the 139-only target: %v", err)
		}
		// And 139 alone works without a name (*SMBSERVER).
		g, err = (&SMBAuthenticator{Transports: []string{TransportNBT139}}).Authenticate(ctx, tg.Addr.String(), labCreds(t, tg.Admin, false))
		if err != nil {
			t.Fatalf("139 as *SMBSERVER: %v", err)
		}
		_ = g.Close()
	})

	t.Run("139 answering for another name", func(t *testing.T) {
		// A host on the LAN answers on 139 for a name it does not own (its
		// session service accepts any called name): its NTLM CHALLENGE
		// still names itself, and no AUTHENTICATE goes to it.
		tg := labTarget(t, lab, testlab.SMB139Only)
		before := authLines(t, tg)
		_, err := a.Authenticate(WithExpectedName(ctx, std.NetBIOSName), tg.Addr.String(), labCreds(t, tg.Admin, false))
		var ae *AuthError
		if !errors.Is(err, ErrIdentityMismatch) || !errors.As(err, &ae) || ae.Diagnosis.Code != diag.IdentityMismatch {
			t.Fatalf("err = %v", err)
		}
		var se *smbconn.Error
		if !errors.As(err, &se) || se.Info.Transport != smbconn.TransportNetBIOS || se.Info.CalledName != std.NetBIOSName {
			t.Fatalf("not refused on 139 as %s: %#v", std.NetBIOSName, se)
		}
		if after := authLines(t, tg); after != before {
			t.Fatalf("the target logged %d authentications, before %d: credentials were sent", after, before)
		}
	})

	t.Run("nothing listening", func(t *testing.T) {
		used := map[netip.Addr]bool{lab.HostAddr: true}
		for _, x := range lab.Targets {
			used[x.Addr] = true
		}
		free := lab.Prefix.Addr()
		for i := 0; i < 200; i++ {
			free = free.Next()
		}
		for used[free] {
			free = free.Next()
		}
		_, err := (&SMBAuthenticator{DialTimeout: time.Second}).Authenticate(ctx, free.String(), labCreds(t, std.Admin, false))
		var ae *AuthError
		if !errors.Is(err, ErrUnreachable) || !errors.As(err, &ae) || (ae.Diagnosis.Code != diag.FirewallFiltered && ae.Diagnosis.Code != diag.NoRoute) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("credential source prompts after a wrong password", func(t *testing.T) {
		bad := labCreds(t, std.Admin, false).WithPassword("nope")
		var reasons []diag.Code
		g, err := CredentialSource{Current: bad, Prompt: func(_ context.Context, r PromptRequest) (Credentials, error) {
			reasons = append(reasons, r.Diagnosis.Code)
			return labCreds(t, std.Admin, false), nil
		}}.Authenticate(ctx, &a, std.Addr.String())
		if err != nil {
			t.Fatal(err)
		}
		_ = g.Close()
		if len(reasons) != 1 || reasons[0] != diag.LogonFailure {
			t.Fatalf("reasons %v", reasons)
		}
	})

	t.Run("canceled", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		_, err := a.Authenticate(cctx, std.Addr.String(), labCreds(t, std.Admin, false))
		if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})

	// Nothing the tests created stays in ADMIN$.
	if left, _ := filepath.Glob(filepath.Join(std.AdminDir, "lanconnect-probe-*")); len(left) != 0 {
		t.Fatalf("probe files left: %v", left)
	}
}

// authLines counts the authentications (successful or not) that the
// target's smbd logged (auth_audit).
func authLines(t *testing.T, tg *testlab.Target) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(tg.SMBConf), "log", "log.*"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(b), "Auth: [")
	}
	return n
}
