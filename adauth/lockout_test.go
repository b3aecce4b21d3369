package adauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

func TestCredentialsRefused(t *testing.T) {
	info := smbconn.Info{}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{smbconn.StatusLogonFailure, true},
		{smbconn.StatusWrongPassword, true},
		{smbconn.StatusNoSuchUser, true},
		{smbconn.StatusAccountLockedOut, true},
		{smbconn.StatusAccountDisabled, true},
		{smbconn.StatusAccountExpired, true},
		{smbconn.StatusPasswordExpired, true},
		{smbconn.StatusPasswordMustChange, true},
		{smbconn.StatusAccountRestriction, true},
		// Restrictions of one computer, not of the credentials.
		{smbconn.StatusInvalidLogonHours, false},
		{smbconn.StatusInvalidWorkstation, false},
		{smbconn.StatusLogonTypeNotGranted, false},
		{smbconn.StatusNTLMBlocked, false},
		{smbconn.ErrGuest, false},
		{&smbconn.DialError{Reason: smbconn.DialRefused}, false},
		{smbconn.ErrProtocol, false},
	} {
		ae := classifySetup("h", "WG\\u", false, setupErr("session setup", info, c.err))
		if got := CredentialsRefused(ae); got != c.want {
			t.Errorf("%v (kind %v): CredentialsRefused %v, want %v", c.err, ae.Kind, got, c.want)
		}
	}
	notAdmin := &AuthError{Step: StepAdminShare, Kind: ErrNotAdmin, Retryable: true}
	if CredentialsRefused(notAdmin) || !logonSucceeded(notAdmin) {
		t.Error("not-admin must not refuse the credentials")
	}
	if CredentialsRefused(errors.New("plain")) {
		t.Error("a plain error")
	}
}

// fixedAuth refuses every password but "good".
type fixedAuth struct{ calls atomic.Int32 }

func (a *fixedAuth) Authenticate(_ context.Context, host string, c Credentials) (*Grant, error) {
	a.calls.Add(1)
	if pw, _ := c.Password(); pw == "good" {
		return &Grant{Addr: host, Credentials: c}, nil
	}
	return nil, classifySetup(host, c.Account(), false, setupErr("session setup", smbconn.Info{}, smbconn.StatusLogonFailure))
}

func TestLockoutGuardSequential(t *testing.T) {
	ctx := context.Background()
	var g LockoutGuard
	inner := &fixedAuth{}
	a := g.Wrap(inner)
	bad, _ := Parse(`WG\admin`, "bad")
	good, _ := Parse(`WG\admin`, "good")
	_, err := a.Authenticate(ctx, "h1", bad)
	if !errors.Is(err, ErrLogonFailure) || !CredentialsRefused(err) {
		t.Fatalf("first: %v", err)
	}
	_, err2 := a.Authenticate(ctx, "h2", bad)
	var ae *AuthError
	if !errors.As(err2, &ae) || ae.Kind != ErrCredentialsRefused || ae.Diagnosis.Code != diag.CredentialsRefused || !ShouldPrompt(err2) || inner.calls.Load() != 1 {
		t.Fatalf("second: %v (calls %d)", err2, inner.calls.Load())
	}
	if fmt.Sprint(err2) == "" || containsSecret(err2.Error()) {
		t.Fatalf("error text %q", err2)
	}
	if _, err := a.Authenticate(ctx, "h3", good); err != nil {
		t.Fatal(err)
	}
	// Credentials that worked and are refused later (changed password)
	// stop there too.
	flaky := &flakyAuth{}
	var g3 LockoutGuard
	a3 := g3.Wrap(flaky)
	for i := range 4 {
		_, err := a3.Authenticate(ctx, fmt.Sprint("h", i), good)
		if (i == 0) != (err == nil) || (i == 2 && !errors.Is(err, ErrCredentialsRefused)) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if flaky.calls.Load() != 2 {
		t.Fatalf("%d logons, want 2", flaky.calls.Load())
	}

	// Prompts: a refusal asks once; a later refusal reuses the answer.
	var asked atomic.Int32
	p := g.Prompt(func(context.Context, PromptRequest) (Credentials, error) {
		asked.Add(1)
		return good, nil
	})
	for i := range 3 {
		c, err := p(ctx, PromptRequest{Addr: fmt.Sprint("h", i), Reason: err2})
		if err != nil || c.Account() != good.Account() {
			t.Fatalf("prompt %d: %v", i, err)
		}
	}
	if asked.Load() != 1 {
		t.Fatalf("asked %d times", asked.Load())
	}
	// A reason that is not a refusal always asks.
	notAdmin := &AuthError{Step: StepAdminShare, Kind: ErrNotAdmin, Retryable: true}
	_, _ = p(ctx, PromptRequest{Reason: notAdmin})
	_, _ = p(ctx, PromptRequest{Reason: notAdmin})
	if asked.Load() != 3 {
		t.Fatalf("asked %d times", asked.Load())
	}
	// A canceled prompt is asked again by the next refusal.
	var g2 LockoutGuard
	a2 := g2.Wrap(&fixedAuth{})
	_, r := a2.Authenticate(ctx, "h1", bad)
	var n atomic.Int32
	p2 := g2.Prompt(func(context.Context, PromptRequest) (Credentials, error) {
		n.Add(1)
		return Credentials{}, ErrPromptCanceled
	})
	_, _ = p2(ctx, PromptRequest{Reason: r})
	_, _ = p2(ctx, PromptRequest{Reason: r})
	if n.Load() != 2 {
		t.Fatalf("canceled prompt asked %d times", n.Load())
	}
}

// flakyAuth accepts the first logon and refuses every later one.
type flakyAuth struct{ calls atomic.Int32 }

func (a *flakyAuth) Authenticate(_ context.Context, host string, c Credentials) (*Grant, error) {
	if a.calls.Add(1) == 1 {
		return &Grant{Addr: host, Credentials: c}, nil
	}
	return nil, classifySetup(host, c.Account(), false, setupErr("session setup", smbconn.Info{}, smbconn.StatusLogonFailure))
}

func containsSecret(s string) bool {
	return strings.Contains(s, "bad") || strings.Contains(s, "good")
}

// notifyingAuth reports a successful logon (as SMBAuthenticator does
// once the SMB session is set up) and then blocks in its "admin checks"
// until release is closed; the logon is reported with notify's
// credentials, or with the caller's when notify is zero.
type notifyingAuth struct {
	notify   Credentials
	release  chan struct{}
	calls    atomic.Int32
	notified chan string // the host, once its logon was reported
}

func (a *notifyingAuth) Authenticate(ctx context.Context, host string, c Credentials) (*Grant, error) {
	a.calls.Add(1)
	n := a.notify
	if n.IsZero() {
		n = c
	}
	notifyLogon(ctx, n)
	a.notified <- host
	select {
	case <-a.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &Grant{Addr: host, Credentials: c}, nil
}

// TestLockoutGuardFansOutAtLogon: the authentications waiting for the
// pilot start as soon as its logon is reported, while the pilot is still
// in its administrator checks; a report for other credentials releases
// nobody.
func TestLockoutGuardFansOutAtLogon(t *testing.T) {
	good, _ := Parse(`WG\admin`, "good")
	other, _ := Parse(`WG\other`, "good")
	for _, tc := range []struct {
		name   string
		notify Credentials
		fanout bool
	}{{"same credentials", Credentials{}, true}, {"other credentials", other, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var g LockoutGuard
			inner := &notifyingAuth{notify: tc.notify, release: make(chan struct{}), notified: make(chan string, 8)}
			a := g.Wrap(inner)
			done := make(chan error, 3)
			for _, h := range []string{"h1", "h2", "h3"} {
				go func() {
					_, err := a.Authenticate(ctx, h, good)
					done <- err
				}()
			}
			// The pilot reported its logon and is blocked in its checks.
			first := <-inner.notified
			g.mu.Lock()
			proven := g.state(g.keyOf(good)).good
			g.mu.Unlock()
			if proven != tc.fanout {
				t.Fatalf("after the pilot's report: credentials proven %v, want %v", proven, tc.fanout)
			}
			if tc.fanout {
				// The two others start while the pilot has not returned.
				for range 2 {
					select {
					case h := <-inner.notified:
						if h == first {
							t.Fatalf("%s authenticated twice", h)
						}
					case <-ctx.Done():
						t.Fatalf("the others did not start after the pilot's logon (calls %d)", inner.calls.Load())
					}
				}
			}
			close(inner.release)
			for range 3 {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			if n := inner.calls.Load(); n != 3 {
				t.Fatalf("%d authentications, want 3", n)
			}
		})
	}
}
