package adauth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

func setupErr(op string, info smbconn.Info, err error) error {
	return &smbconn.Error{Op: op, Host: "10.9.9.9", Info: info, Err: err}
}

func TestClassifySetup(t *testing.T) {
	workgroup := smbconn.Info{HasChallenge: true, Challenge: smbconn.ChallengeInfo{NetBIOSComputer: "PC1", NetBIOSDomain: "PC1", HasTargetInfo: true}}
	joined := smbconn.Info{HasChallenge: true, Challenge: smbconn.ChallengeInfo{NetBIOSComputer: "PC1", NetBIOSDomain: "CORP", HasTargetInfo: true}}
	v1only := smbconn.Info{HasChallenge: true, Challenge: smbconn.ChallengeInfo{NetBIOSComputer: "PC1"}}
	for _, tc := range []struct {
		name      string
		err       error
		local     bool
		kind      error
		code      diag.Code
		step      string
		retryable bool
	}{
		{"refused", setupErr("dial", smbconn.Info{}, &smbconn.DialError{Reason: smbconn.DialRefused, Err: syscall.ECONNREFUSED}), false, ErrUnreachable, diag.FirewallRefused, StepConnect, false},
		{"filtered", setupErr("dial", smbconn.Info{}, &smbconn.DialError{Reason: smbconn.DialTimeout, Err: os.ErrDeadlineExceeded}), false, ErrUnreachable, diag.FirewallFiltered, StepConnect, false},
		{"no route", setupErr("dial", smbconn.Info{}, &smbconn.DialError{Reason: smbconn.DialNoRoute, Err: syscall.EHOSTUNREACH}), false, ErrUnreachable, diag.NoRoute, StepConnect, false},
		{"resolve", setupErr("dial", smbconn.Info{}, &smbconn.DialError{Reason: smbconn.DialResolve, Err: errors.New("nx")}), false, ErrUnreachable, diag.NameNotResolved, StepConnect, false},
		{"logon", setupErr("session setup", workgroup, smbconn.StatusLogonFailure), true, ErrLogonFailure, diag.LogonFailure, StepLogon, true},
		{"ntlmv1", setupErr("session setup", v1only, smbconn.StatusLogonFailure), true, ErrLogonFailure, diag.NTLMv1Only, StepLogon, true},
		{"locked", setupErr("session setup", joined, smbconn.StatusAccountLockedOut), false, ErrAccountRestricted, diag.AccountLocked, StepLogon, true},
		{"net logon right", setupErr("session setup", joined, smbconn.StatusLogonTypeNotGranted), false, ErrAccountRestricted, diag.NetworkLogonDenied, StepLogon, true},
		{"ntlm blocked", setupErr("session setup", joined, smbconn.StatusNTLMBlocked), false, ErrNTLMBlocked, diag.NTLMBlocked, StepLogon, false},
		{"guest local workgroup", setupErr("session setup", workgroup, smbconn.ErrGuest), true, ErrGuest, diag.GuestOnly, StepLogon, false},
		{"guest local joined", setupErr("session setup", joined, smbconn.ErrGuest), true, ErrGuest, diag.GuestOnly, StepLogon, true},
		{"guest domain", setupErr("session setup", joined, smbconn.ErrGuest), false, ErrGuest, diag.GuestMapped, StepLogon, true},
		{"signing", setupErr("session setup", joined, fmt.Errorf("%w: x", smbconn.ErrSigning)), false, ErrSigning, diag.SigningMismatch, StepLogon, false},
		{"encryption", setupErr("session setup", joined, smbconn.ErrEncryptionUnavailable), false, ErrEncryption, diag.EncryptionUnsupported, StepLogon, false},
		{"below min dialect", setupErr("negotiate", smbconn.Info{Dialect: 0x0210}, fmt.Errorf("%w: x", smbconn.ErrDowngrade)), false, ErrDowngrade, diag.SMBDowngrade, StepConnect, false},
		{"validation failed", setupErr("validate negotiate", joined, fmt.Errorf("%w: x", smbconn.ErrDowngrade)), false, ErrDowngrade, diag.SMBDowngrade, StepConnect, false},
		{"smb1", setupErr("negotiate", smbconn.Info{}, fmt.Errorf("%w: x", smbconn.ErrConnLost)), false, ErrSMBProtocol, diag.SMBProtocol, StepConnect, false},
		{"garbage", setupErr("negotiate", smbconn.Info{}, fmt.Errorf("%w: x", smbconn.ErrProtocol)), false, ErrSMBProtocol, diag.SMBProtocol, StepConnect, false},
		{"canceled", setupErr("negotiate", smbconn.Info{}, context.Canceled), false, ErrCanceled, diag.Canceled, StepConnect, false},
		{"timeout", setupErr("session setup", smbconn.Info{}, context.DeadlineExceeded), false, ErrCanceled, diag.Timeout, StepLogon, false},
		{"odd status", setupErr("session setup", joined, smbconn.NTStatus(0xC0001234)), false, ErrSMBProtocol, diag.ServerStatus, StepLogon, false},
		{"identity", setupErr("session setup", joined, &smbconn.IdentityError{Expected: "LCREAL", NetBIOSComputer: "LCROGUE"}), false, ErrIdentityMismatch, diag.IdentityMismatch, StepLogon, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ae := classifySetup("10.9.9.9", `CORP\alice`, tc.local, tc.err)
			if !errors.Is(ae, tc.kind) || ae.Diagnosis.Code != tc.code || ae.Step != tc.step || ShouldPrompt(ae) != tc.retryable {
				t.Fatalf("got kind %v code %s step %s retry %v", ae.Kind, ae.Diagnosis.Code, ae.Step, ae.Retryable)
			}
			if ae.Diagnosis.Summary == "" || (tc.kind != ErrCanceled && ae.Diagnosis.Fix == "") {
				t.Fatalf("diagnosis incomplete: %+v", ae.Diagnosis)
			}
			// Exactly one kind matches.
			n := 0
			for _, k := range []error{ErrUnreachable, ErrLogonFailure, ErrAccountRestricted, ErrNTLMBlocked, ErrGuest, ErrNotAdmin, ErrSigning, ErrEncryption, ErrSMBProtocol, ErrCanceled, ErrIdentityMismatch, ErrDowngrade, ErrCredentialsRefused} {
				if errors.Is(ae, k) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%d kinds match %v", n, ae)
			}
			if !errors.Is(ae, tc.err) {
				t.Fatal("cause not reachable")
			}
		})
	}
}

func TestIdentityMismatchDiagnosis(t *testing.T) {
	ae := classifySetup("10.9.9.11", `CORP\alice`, false, setupErr("session setup", smbconn.Info{},
		&smbconn.IdentityError{Expected: "LCREAL", NetBIOSComputer: "LCROGUE", DNSComputer: "evil\x1b[2J.lab"}))
	d := ae.Diagnosis.Summary
	if !strings.Contains(d, `"LCREAL"`) || !strings.Contains(d, `"LCROGUE"`) || !strings.Contains(d, "10.9.9.11") || strings.Contains(d, "\x1b") {
		t.Fatalf("summary %q: want both names quoted, the address, and no control character", d)
	}
	if !errors.Is(ae, smbconn.ErrIdentityMismatch) || !errors.Is(ae, ErrIdentityMismatch) {
		t.Fatalf("%v does not match both sentinels", ae)
	}
}

func TestExpectedNameContext(t *testing.T) {
	ctx := context.Background()
	if ExpectedName(ctx) != "" {
		t.Fatal("expected name without WithExpectedName")
	}
	if got := ExpectedName(WithExpectedName(ctx, "lcreal.lab")); got != "lcreal.lab" {
		t.Fatalf("ExpectedName = %q", got)
	}
}

func TestShouldPromptNonAuthError(t *testing.T) {
	if ShouldPrompt(errors.New("x")) || ShouldPrompt(nil) || ShouldPrompt(context.Canceled) {
		t.Fatal("ShouldPrompt on a foreign error")
	}
}

func TestIsLocalAccount(t *testing.T) {
	wg := smbconn.Info{HasChallenge: true, Challenge: smbconn.ChallengeInfo{NetBIOSComputer: "PC1", NetBIOSDomain: "PC1"}}
	joined := smbconn.Info{HasChallenge: true, Challenge: smbconn.ChallengeInfo{NetBIOSComputer: "PC1", NetBIOSDomain: "CORP"}}
	for _, tc := range []struct {
		acct  string
		info  smbconn.Info
		local bool
	}{
		{`.\admin`, joined, true}, {`pc1\admin`, joined, true}, {`admin`, wg, true}, {`admin`, joined, false},
		{`CORP\admin`, joined, false}, {`admin@corp.example`, joined, false}, {`admin`, smbconn.Info{}, false},
	} {
		c, _ := Parse(tc.acct, "pw")
		if got := isLocalAccount(c, tc.info); got != tc.local {
			t.Errorf("%s: local = %v", tc.acct, got)
		}
	}
}

// fakeAuth succeeds for one password and fails with errs in order.
type fakeAuth struct {
	good  string
	errs  []error
	tries []string
}

func (f *fakeAuth) Authenticate(_ context.Context, host string, c Credentials) (*Grant, error) {
	f.tries = append(f.tries, c.Account())
	if p, _ := c.Password(); p == f.good {
		return &Grant{Addr: host, Credentials: c}, nil
	}
	if len(f.errs) == 0 {
		return nil, classifySetup(host, c.Account(), false, setupErr("session setup", smbconn.Info{}, smbconn.StatusLogonFailure))
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return nil, err
}

func TestCredentialSource(t *testing.T) {
	ctx := context.Background()
	cur, _ := Parse(`CORP\old`, "bad")
	good, _ := Parse(`CORP\new`, "good")

	t.Run("current works", func(t *testing.T) {
		f := &fakeAuth{good: "bad"}
		g, err := CredentialSource{Current: cur}.Authenticate(ctx, f, "h")
		if err != nil || g.Credentials.Account() != `CORP\old` {
			t.Fatal(err)
		}
	})
	t.Run("prompt after logon failure", func(t *testing.T) {
		f := &fakeAuth{good: "good"}
		var reqs []PromptRequest
		g, err := CredentialSource{Current: cur, Prompt: func(_ context.Context, r PromptRequest) (Credentials, error) {
			reqs = append(reqs, r)
			return good, nil
		}}.Authenticate(ctx, f, "h")
		if err != nil || g.Credentials.Account() != `CORP\new` {
			t.Fatal(err)
		}
		if len(reqs) != 1 || reqs[0].Attempt != 1 || reqs[0].Account != `CORP\old` || reqs[0].Diagnosis.Code != diag.LogonFailure || !errors.Is(reqs[0].Reason, ErrLogonFailure) {
			t.Fatalf("%+v", reqs)
		}
	})
	t.Run("no prompt for firewall", func(t *testing.T) {
		fw := classifySetup("h", "", false, setupErr("dial", smbconn.Info{}, &smbconn.DialError{Reason: smbconn.DialRefused, Err: syscall.ECONNREFUSED}))
		f := &fakeAuth{good: "good", errs: []error{fw}}
		prompted := false
		_, err := CredentialSource{Current: cur, Prompt: func(context.Context, PromptRequest) (Credentials, error) {
			prompted = true
			return good, nil
		}}.Authenticate(ctx, f, "h")
		if !errors.Is(err, ErrUnreachable) || prompted {
			t.Fatalf("err %v prompted %v", err, prompted)
		}
	})
	t.Run("max prompts", func(t *testing.T) {
		f := &fakeAuth{good: "never"}
		n := 0
		_, err := CredentialSource{Current: cur, MaxPrompts: 2, Prompt: func(context.Context, PromptRequest) (Credentials, error) {
			n++
			return good, nil
		}}.Authenticate(ctx, f, "h")
		if !errors.Is(err, ErrLogonFailure) || n != 2 || len(f.tries) != 3 {
			t.Fatalf("err %v prompts %d tries %d", err, n, len(f.tries))
		}
	})
	t.Run("canceled prompt", func(t *testing.T) {
		f := &fakeAuth{good: "good"}
		_, err := CredentialSource{Current: cur, Prompt: func(context.Context, PromptRequest) (Credentials, error) {
			return Credentials{}, ErrPromptCanceled
		}}.Authenticate(ctx, f, "h")
		var ae *AuthError
		if !errors.Is(err, ErrPromptCanceled) || !errors.As(err, &ae) || ae.Step != StepPrompt || ShouldPrompt(err) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("no current, no prompt", func(t *testing.T) {
		_, err := CredentialSource{}.Authenticate(ctx, &fakeAuth{}, "h")
		if !errors.Is(err, ErrNoCredentials) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("no current, prompt first", func(t *testing.T) {
		var req PromptRequest
		g, err := CredentialSource{Prompt: func(_ context.Context, r PromptRequest) (Credentials, error) {
			req = r
			return good, nil
		}}.Authenticate(ctx, &fakeAuth{good: "good"}, "h")
		if err != nil || g == nil || !errors.Is(req.Reason, ErrNoCredentials) || req.Attempt != 1 {
			t.Fatalf("err %v req %+v", err, req)
		}
	})
}

func TestAuthErrorNeverShowsSecret(t *testing.T) {
	const secret = "Pa55-w0rd-XYZ"
	c, _ := Parse(`CORP\alice`, secret)
	ae := classifySetup("h", c.Account(), false, setupErr("session setup", smbconn.Info{}, smbconn.StatusLogonFailure))
	for _, s := range []string{ae.Error(), fmt.Sprintf("%+v", ae), fmt.Sprintf("%#v", ae), fmt.Sprintf("%+v", &Grant{Credentials: c})} {
		if strings.Contains(s, secret) {
			t.Fatalf("secret in %q", s)
		}
	}
}

func TestAuthenticateBadInput(t *testing.T) {
	var a SMBAuthenticator
	c, _ := Parse(`CORP\alice`, "pw")
	if _, err := a.Authenticate(context.Background(), " ", c); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("empty host: %v", err)
	}
	if _, err := a.Authenticate(context.Background(), "127.0.0.1", Credentials{User: "x"}); !errors.Is(err, ErrNoCredentials) || !ShouldPrompt(err) {
		t.Fatalf("no secret: %v", err)
	}
}

func TestDiagNotAdminVariants(t *testing.T) {
	builtin := diagNotAdmin(`.\Administrator`, true, true)
	local := diagNotAdmin(`.\helpdesk`, true, false)
	domain := diagNotAdmin(`CORP\helpdesk`, false, false)
	if builtin.Code != diag.UACRemote || !strings.Contains(builtin.Summary, "FilterAdministratorToken") {
		t.Fatalf("builtin: %+v", builtin)
	}
	if local.Code != diag.UACRemote || !strings.Contains(local.Fix, "LocalAccountTokenFilterPolicy") {
		t.Fatalf("local: %+v", local)
	}
	if domain.Code != diag.NotAdmin || strings.Contains(domain.Fix, "LocalAccountTokenFilterPolicy") {
		t.Fatalf("domain: %+v", domain)
	}
}

func TestGrantIdentity(t *testing.T) {
	var nilGrant *Grant
	if nilGrant.Identity() != "" {
		t.Fatal("nil grant has an identity")
	}
	g := &Grant{Facts: Facts{Server: ServerInfo{NetBIOSName: "LCREAL", DNSName: "lcreal.lab"}}}
	if g.Identity() != "LCREAL" {
		t.Fatalf("Identity = %q", g.Identity())
	}
	g.Facts.Server.NetBIOSName = ""
	if g.Identity() != "lcreal.lab" {
		t.Fatalf("Identity without NetBIOS name = %q", g.Identity())
	}
}
