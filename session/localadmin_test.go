package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// fakeLAPS is a LocalAdminSource: the computer's own account "admin"
// with password pw, or err.
type fakeLAPS struct {
	pw  string
	err error

	mu   sync.Mutex
	reqs []adauth.LocalAdminRequest
}

func (f *fakeLAPS) LocalAdmin(ctx context.Context, req adauth.LocalAdminRequest) (adauth.Credentials, string, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if f.err != nil {
		return adauth.Credentials{}, "", f.err
	}
	cr, err := adauth.Parse(`.\admin`, f.pw)
	return cr, "laps-windows", err
}

func (f *fakeLAPS) requests() []adauth.LocalAdminRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]adauth.LocalAdminRequest(nil), f.reqs...)
}

// lapsErr is an error with a diagnosis, as package laps returns.
type lapsErr struct{ d diag.Diagnosis }

func (e *lapsErr) Error() string            { return "laps: " + e.d.Summary }
func (e *lapsErr) Diagnose() diag.Diagnosis { return e.d }

// noSecret fails when secret appears in any event, error, diagnosis or
// log line of the session.
func noSecret(t *testing.T, secret string, evs []session.Event, logs *bytes.Buffer) {
	t.Helper()
	for _, e := range evs {
		s := fmt.Sprintf("%v %+v %#v %+v", e.Err, e.Err, e.Diagnosis, e.Result)
		if strings.Contains(s, secret) {
			t.Fatalf("the LAPS password appears in event %s: %s", e.State, s)
		}
	}
	if logs != nil && strings.Contains(logs.String(), secret) {
		t.Fatalf("the LAPS password appears in the log:\n%s", logs)
	}
}

func TestLocalAdminAfterRefusal(t *testing.T) {
	const secret = "laps-secret-7Qz"
	src := &fakeLAPS{pw: secret}
	var logs bytes.Buffer
	h := newHarness(t, func(h *harness) {
		h.auth.adminPW = secret
		h.cfg.Credentials, _ = adauth.Parse(`CORP\user`, "good") // not an administrator
		h.cfg.RememberCredentials = true
		h.cfg.LocalAdmin = src
		h.cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	s := h.c.Connect(context.Background(), host(1))
	evs := until(t, s, func(e session.Event) bool { return e.State != session.Connecting })
	last := evs[len(evs)-1]
	if last.State != session.Running || last.Result.CredentialSource != "laps-windows" || last.Result.Account != `.\admin` {
		t.Fatalf("last %v source %q account %q", brief(evs), last.Result.CredentialSource, last.Result.Account)
	}
	reqs := src.requests()
	if len(reqs) != 1 || reqs[0].Name != "PC01" || reqs[0].Addr != "127.0.2.2" || reqs[0].Host.Name != "PC01" {
		t.Fatalf("requests %+v", reqs)
	}
	var ae *adauth.AuthError
	if !errors.As(reqs[0].Reason, &ae) || ae.Kind != adauth.ErrNotAdmin {
		t.Fatalf("reason %v", reqs[0].Reason)
	}
	// Sent under the host's name only, and never remembered.
	if _, names := h.auth.calledWith(); names[len(names)-1] != "PC01" {
		t.Fatalf("expected names %v", names)
	}
	if cr := h.c.Credentials(); cr.User != "user" {
		t.Fatalf("the LAPS credentials became the console's: %s", cr.Account())
	}
	// The journal, as it is saved, while the session runs.
	h.jmu.Lock()
	if len(h.journals) == 0 {
		t.Fatal("no journal to check")
	}
	for _, j := range h.journals {
		var b bytes.Buffer
		if err := j.j.Save(&b); err != nil {
			t.Fatal(err)
		}
		if b.Len() == 0 || strings.Contains(b.String(), secret) {
			t.Fatalf("journal: %q", b.String())
		}
	}
	h.jmu.Unlock()
	s.Close(context.Background())
	noSecret(t, secret, append(evs, collect(t, s)...), &logs)
}

func TestLocalAdminGivenFirst(t *testing.T) {
	src := &fakeLAPS{pw: "good"}
	h := newHarness(t, func(h *harness) { h.cfg.LocalAdmin = src })
	r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
	if r.State != session.Running || r.CredentialSource != session.CredentialsGiven || len(src.requests()) != 0 {
		t.Fatalf("%v source %q, %d LAPS reads", r.State, r.CredentialSource, len(src.requests()))
	}
}

func TestLocalAdminFirstPolicy(t *testing.T) {
	src := &fakeLAPS{pw: "good"}
	h := newHarness(t, func(h *harness) {
		h.cfg.LocalAdmin, h.cfg.LocalAdminFirst = src, true
		h.cfg.Credentials, _ = adauth.Parse(`CORP\user`, "good")
	})
	r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
	if r.State != session.Running || r.CredentialSource != "laps-windows" {
		t.Fatalf("%v source %q", r.State, r.CredentialSource)
	}
	for _, l := range h.auth.events() {
		if strings.Contains(l, "user/") {
			t.Fatalf("the technician's credentials were tried first: %v", h.auth.events())
		}
	}
}

func TestLocalAdminDiagnosis(t *testing.T) {
	notReadable := diag.Diagnosis{Code: diag.LAPSNotReadable, Summary: "LAPS cannot help with PC01: withheld", Fix: "read rights"}
	for _, tc := range []struct {
		name     string
		src      *fakeLAPS
		host     discovery.Host
		prompt   bool
		want     diag.Code
		wantSrc  string
		lapsRead int
	}{
		{name: "not-readable", src: &fakeLAPS{err: &lapsErr{notReadable}}, host: host(1), want: diag.LAPSNotReadable, lapsRead: 1},
		{name: "plain error", src: &fakeLAPS{err: errors.New("ldap down")}, host: host(1), want: diag.LAPSFailed, lapsRead: 1},
		{name: "refused too", src: &fakeLAPS{pw: "stale"}, host: host(1), want: diag.LAPSLogonRefused, lapsRead: 1},
		{name: "by address", src: &fakeLAPS{pw: "good"}, host: discovery.Host{Addrs: []netip.Addr{netip.MustParseAddr("127.0.2.9")}}, want: diag.LAPSNoName},
		{name: "then prompt", src: &fakeLAPS{err: &lapsErr{notReadable}}, host: host(1), prompt: true, wantSrc: session.CredentialsPrompted, lapsRead: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prompts []adauth.PromptRequest
			h := newHarness(t, func(h *harness) {
				h.cfg.Credentials, _ = adauth.Parse(`CORP\user`, "bad") // logon failure
				h.cfg.LocalAdmin = tc.src
				if tc.prompt {
					h.cfg.Prompt = func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
						prompts = append(prompts, req)
						return adauth.Parse("admin", "good")
					}
				}
			})
			r, _ := h.c.Connect(context.Background(), tc.host).Wait(context.Background())
			if got := len(tc.src.requests()); got != tc.lapsRead {
				t.Fatalf("%d LAPS reads, want %d", got, tc.lapsRead)
			}
			if tc.wantSrc != "" {
				if r.State != session.Running || r.CredentialSource != tc.wantSrc {
					t.Fatalf("%v source %q: %v", r.State, r.CredentialSource, r.Err)
				}
				// The prompt is told why the technician's account was refused.
				if len(prompts) != 1 || prompts[0].Diagnosis.Code != diag.LogonFailure || prompts[0].Account != `CORP\user` {
					t.Fatalf("prompts %+v", prompts)
				}
				return
			}
			if r.State != session.Failed || r.Step != session.StepAuthenticate || r.Diagnosis.Code != tc.want {
				t.Fatalf("%v at %v: %+v (%v)", r.State, r.Step, r.Diagnosis, r.Err)
			}
			if !strings.Contains(r.Diagnosis.Summary, "LAPS") {
				t.Fatalf("diagnosis does not name LAPS: %+v", r.Diagnosis)
			}
			if tc.want == diag.LAPSNoName && !errors.Is(r.Err, session.ErrNoLocalName) {
				t.Fatalf("err %v", r.Err)
			}
			if strings.Contains(fmt.Sprintf("%+v", r.Err), "stale") {
				t.Fatalf("password in the error: %+v", r.Err)
			}
		})
	}
}

// A computer that answers under another name never gets the password
// read for the host's name.
func TestLocalAdminIdentity(t *testing.T) {
	const secret = "laps-secret-ID"
	src := &fakeLAPS{pw: secret}
	h := newHarness(t, func(h *harness) {
		h.auth.identity = "ROGUE"
		h.cfg.LocalAdmin, h.cfg.LocalAdminFirst = src, true
	})
	r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
	if r.State != session.Failed || r.Diagnosis.Code != diag.IdentityMismatch {
		t.Fatalf("%v %+v", r.State, r.Diagnosis)
	}
	for _, l := range h.auth.events() {
		if strings.Contains(l, secret) {
			t.Fatalf("the password reached a computer answering as ROGUE: %v", h.auth.events())
		}
	}
}
