package adauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/krb"
)

// TestKerberosPolicy: the policy decides before anything is sent; an
// IP-only target under -auth kerberos fails with the diagnosis that
// Kerberos needs the computer's DNS name.
func TestKerberosPolicy(t *testing.T) {
	k, err := NewKerberos(KerberosConfig{KDC: "127.0.0.1:1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	domain, _ := Parse(`LAB\admin`, "pw-secret-1")
	local, _ := Parse(`.\admin`, "pw-secret-1")
	ctx := context.Background()
	for _, c := range []struct {
		name string
		a    SMBAuthenticator
		ctx  context.Context
		host string
		cr   Credentials
		kind error
		code diag.Code
	}{
		{"kerberos by address", SMBAuthenticator{Auth: AuthKerberos, Kerberos: k}, ctx, "127.0.0.1", domain, ErrKerberos, diag.KerberosNeedsDNSName},
		{"kerberos with a short name", SMBAuthenticator{Auth: AuthKerberos, Kerberos: k}, WithExpectedName(ctx, "WS01"), "127.0.0.1", domain, ErrKerberos, diag.KerberosNeedsDNSName},
		{"kerberos with a local account", SMBAuthenticator{Auth: AuthKerberos, Kerberos: k}, WithDNSName(ctx, "ws01.lab.test"), "127.0.0.1", local, ErrKerberos, diag.KerberosNeedsDomainAccount},
		{"kerberos without a cache", SMBAuthenticator{Auth: AuthKerberos}, WithDNSName(ctx, "ws01.lab.test"), "127.0.0.1", domain, ErrKerberos, diag.KerberosNotConfigured},
		{"unknown policy", SMBAuthenticator{Auth: "negotiate", Kerberos: k}, ctx, "127.0.0.1", domain, ErrKerberos, diag.Other},
		// The explicit KDC refuses: the AS exchange fails before any SMB.
		{"KDC unreachable", SMBAuthenticator{Auth: AuthKerberos, Kerberos: k}, WithDNSName(ctx, "ws01.lab.test"), "127.0.0.1", domain, ErrKerberos, diag.KDCUnreachable},
		// auto: a domain account and a DNS name take Kerberos, and do
		// not fall back to NTLM because the KDC is down.
		{"auto with a DNS name", SMBAuthenticator{Kerberos: k}, WithExpectedName(ctx, "ws01.lab.test"), "127.0.0.1", domain, ErrKerberos, diag.KDCUnreachable},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := c.a
			a.Port = 1
			g, err := a.Authenticate(c.ctx, c.host, c.cr)
			var ae *AuthError
			if g != nil || !errors.As(err, &ae) || !errors.Is(err, c.kind) || ae.Diagnosis.Code != c.code {
				t.Fatalf("got %v, %v; want %v with %s", g, err, c.kind, c.code)
			}
			if strings.Contains(err.Error(), "pw-secret-1") || strings.Contains(ae.Diagnosis.String(), "pw-secret-1") {
				t.Fatal("the error shows the password")
			}
			if ae.Retryable {
				t.Errorf("%v: other credentials won't help, but Retryable", err)
			}
		})
	}
	if st := k.Stats(); st.ASExchanges != 2 || st.ASReqs != 0 {
		t.Errorf("KDC traffic %+v: want two AS exchanges tried (the refused KDC is tried again: it judged nothing), none for the policy failures", st)
	}
	// auto by address, or with no cache at all, is NTLM: it dials SMB (port
	// 1 refuses) instead of failing on Kerberos.
	for _, a := range []SMBAuthenticator{{Kerberos: k, Port: 1}, {Auth: AuthAuto, Port: 1}, {Auth: AuthNTLM, Kerberos: k, Port: 1}} {
		_, err := a.Authenticate(WithExpectedName(ctx, "ws01.lab.test"), "127.0.0.1", domain)
		if a.Kerberos != nil && a.Auth == "" {
			_, err = a.Authenticate(ctx, "127.0.0.1", domain)
		}
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%+v: %v, want an NTLM dial (ErrUnreachable)", a.Auth, err)
		}
	}
}

// TestKerberosDiagnoses maps each of internal/krb's diagnoses to its code.
func TestKerberosDiagnoses(t *testing.T) {
	for _, c := range []struct {
		kind  error
		akind error
		code  diag.Code
		retry bool
	}{
		{krb.ErrKDCUnreachable, ErrKerberos, diag.KDCUnreachable, false},
		{krb.ErrNoKDC, ErrKerberos, diag.KDCNotFound, false},
		{krb.ErrClockSkew, ErrKerberos, diag.ClockSkew, false},
		{krb.ErrPrincipalUnknown, ErrLogonFailure, diag.KerberosUnknownUser, true},
		{krb.ErrSPNUnknown, ErrKerberos, diag.KerberosUnknownSPN, false},
		{krb.ErrWrongPassword, ErrLogonFailure, diag.KerberosWrongPassword, true},
		{krb.ErrAccountLocked, ErrAccountRestricted, diag.AccountLocked, true},
		{krb.ErrAccountDisabled, ErrAccountRestricted, diag.AccountDisabled, true},
		{krb.ErrAccountExpired, ErrAccountRestricted, diag.AccountExpired, true},
		{krb.ErrAccount, ErrAccountRestricted, diag.KerberosAccountRevoked, true},
		{krb.ErrNoCommonEtype, ErrKerberos, diag.KerberosNoCommonEtype, false},
		{krb.ErrMutualAuth, ErrKerberos, diag.KerberosMutualAuth, false},
		{krb.ErrNTLMBlocked, ErrNTLMBlocked, diag.NTLMBlocked, false},
		{krb.ErrKDC, ErrKerberos, diag.KerberosError, false},
	} {
		ke := &krb.Error{Op: "AS exchange", Principal: "admin@LAB.TEST", KDC: "10.9.9.9:88", Kind: c.kind, Skew: -7 * time.Minute}
		ae := krbAuthError("ws01.lab.test", `LAB\admin`, ke)
		if ae == nil || ae.Diagnosis.Code != c.code || !errors.Is(ae, c.akind) || !errors.Is(ae, c.kind) || ae.Retryable != c.retry {
			t.Errorf("%v: %+v, want %s, %v, retryable %v", c.kind, ae, c.code, c.akind, c.retry)
			continue
		}
		if ae.Diagnosis.Summary == "" || ae.Diagnosis.Fix == "" {
			t.Errorf("%v: empty summary or fix: %+v", c.kind, ae.Diagnosis)
		}
		if c.kind == krb.ErrClockSkew && !strings.Contains(ae.Diagnosis.Summary, "7m0s behind") {
			t.Errorf("clock skew summary %q does not say by how much", ae.Diagnosis.Summary)
		}
		if c.kind == krb.ErrNTLMBlocked && !strings.Contains(ae.Diagnosis.Fix, "Kerberos") {
			t.Errorf("NTLM blocked fix %q does not advise Kerberos", ae.Diagnosis.Fix)
		}
	}
	if krbAuthError("h", "a", errors.New("other")) != nil {
		t.Error("a non-Kerberos error got a Kerberos diagnosis")
	}
}

func TestTargetDNSName(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		ctx  context.Context
		host string
		want string
	}{
		{ctx, "10.1.2.3", ""},
		{ctx, "ws01.lab.test", "ws01.lab.test"},
		{ctx, "ws01.lab.test:445", "ws01.lab.test"},
		{ctx, "WS01", ""},
		{WithExpectedName(ctx, "WS01"), "10.1.2.3", ""},
		{WithExpectedName(ctx, "ws01.lab.test."), "10.1.2.3", "ws01.lab.test"},
		{WithDNSName(WithExpectedName(ctx, "other.lab.test"), "ws01.lab.test"), "10.1.2.3", "ws01.lab.test"},
		{WithExpectedName(ctx, "10.1.2.4"), "10.1.2.3", ""},
	} {
		if got := targetDNSName(c.ctx, c.host); got != c.want {
			t.Errorf("targetDNSName(%q) = %q, want %q", c.host, got, c.want)
		}
	}
}

func TestParseAuthPolicy(t *testing.T) {
	for in, want := range map[string]AuthPolicy{"": AuthAuto, "AUTO": AuthAuto, "kerberos": AuthKerberos, "ntlm": AuthNTLM} {
		if p, err := ParseAuthPolicy(in); err != nil || p != want {
			t.Errorf("ParseAuthPolicy(%q) = %q, %v", in, p, err)
		}
	}
	if _, err := ParseAuthPolicy("negotiate"); !errors.Is(err, ErrBadPolicy) {
		t.Errorf("negotiate: %v", err)
	}
}
