package session_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

func hostsN(n int) []discovery.Host {
	var hs []discovery.Host
	for i := range n {
		hs = append(hs, host(i))
	}
	return hs
}

// tried counts the logons the fake saw with user/pw.
func tried(a *fakeAuth, userPW string) int {
	n := 0
	for _, e := range a.events() {
		if e == "start "+userPW {
			n++
		}
	}
	return n
}

// A wrong shared password is tried on one host only; every other host
// fails at once with credentials-refused.
func TestBulkWrongPasswordOneLogon(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.cfg.Credentials, _ = adauth.Parse("admin", "wrong")
		h.cfg.Concurrency = 8
	})
	const n = 20
	codes := map[diag.Code]int{}
	for r := range h.c.ConnectAll(context.Background(), hostsN(n), session.BulkOptions{}) {
		if r.Result.State != session.Failed {
			t.Fatalf("%s: %v", r.Host.Name, r.Result.State)
		}
		codes[r.Result.Diagnosis.Code]++
		if r.Result.Diagnosis.Code == diag.CredentialsRefused {
			if !errors.Is(r.Result.Err, adauth.ErrCredentialsRefused) {
				t.Fatalf("%s: err %v", r.Host.Name, r.Result.Err)
			}
			if strings.Contains(r.Result.Err.Error(), "wrong") || strings.Contains(r.Result.Diagnosis.String(), "wrong") {
				t.Fatal("password in the error")
			}
		}
	}
	if got := h.auth.calls.Load(); got != 1 {
		t.Fatalf("%d logons with the wrong password, want 1: %v", got, h.auth.events())
	}
	if codes[diag.LogonFailure] != 1 || codes[diag.CredentialsRefused] != n-1 {
		t.Fatalf("diagnoses %v", codes)
	}
	// The refusal lasts for the Client: a later Connect does not try.
	r, _ := h.c.Connect(context.Background(), host(n)).Wait(context.Background())
	if r.Diagnosis.Code != diag.CredentialsRefused || h.auth.calls.Load() != 1 {
		t.Fatalf("later connect: %+v, %d logons", r.Diagnosis, h.auth.calls.Load())
	}
}

// Good shared credentials are proved on one host before the others use
// them; then they fan out.
func TestBulkOneHostFirst(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.cfg.Concurrency = 6 })
	const n = 6
	for r := range h.c.ConnectAll(context.Background(), hostsN(n), session.BulkOptions{}) {
		if r.Result.State != session.Running {
			t.Fatalf("%s: %v %v", r.Host.Name, r.Result.State, r.Result.Err)
		}
		r.Session.Close(context.Background())
	}
	ev := h.auth.events()
	if len(ev) != 2*n || ev[0] != "start admin/good" || ev[1] != "end admin/good" {
		t.Fatalf("the first logon did not end before the others started: %v", ev)
	}
}

// After a refusal the sessions share one prompt; its answer is tried on
// one host first, then by all.
func TestBulkOnePromptAfterRefusal(t *testing.T) {
	var prompts atomic.Int32
	release := make(chan struct{})
	h := newHarness(t, func(h *harness) {
		h.cfg.Credentials, _ = adauth.Parse("admin", "wrong")
		h.cfg.Concurrency = 10
		h.cfg.Prompt = func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
			if prompts.Add(1) == 1 {
				// Hold the prompt until the other sessions queue on it.
				select {
				case <-release:
				case <-ctx.Done():
					return adauth.Credentials{}, ctx.Err()
				}
			}
			return adauth.Parse("admin", "good")
		}
	})
	const n = 10
	var mu sync.Mutex
	waiting := 0
	res := h.c.ConnectAll(context.Background(), hostsN(n), session.BulkOptions{OnStart: func(s *session.Session) {
		go func() {
			for e := range s.Events() {
				if e.Step == session.StepCredentials {
					mu.Lock()
					waiting++
					if waiting == n {
						close(release)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}})
	for r := range res {
		if r.Result.State != session.Running {
			t.Fatalf("%s: %v %v", r.Host.Name, r.Result.State, r.Result.Err)
		}
		r.Session.Close(context.Background())
	}
	if p := prompts.Load(); p != 1 {
		t.Fatalf("%d prompts, want 1", p)
	}
	if w, g := tried(h.auth, "admin/wrong"), tried(h.auth, "admin/good"); w != 1 || g != n {
		t.Fatalf("logons: %d wrong (want 1), %d good (want %d): %v", w, g, n, h.auth.events())
	}
}

// A wrong prompt answer is refused in turn: it is tried once, and one more
// prompt follows.
func TestBulkWrongPromptAnswerRefusedToo(t *testing.T) {
	var prompts atomic.Int32
	h := newHarness(t, func(h *harness) {
		h.cfg.Credentials, _ = adauth.Parse("admin", "wrong")
		h.cfg.Concurrency = 5
		h.cfg.Prompt = func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
			if prompts.Add(1) == 1 {
				return adauth.Parse("admin", "typo")
			}
			return adauth.Parse("admin", "good")
		}
	})
	const n = 8
	for r := range h.c.ConnectAll(context.Background(), hostsN(n), session.BulkOptions{}) {
		if r.Result.State != session.Running {
			t.Fatalf("%s: %v %v", r.Host.Name, r.Result.State, r.Result.Err)
		}
		r.Session.Close(context.Background())
	}
	if p := prompts.Load(); p != 2 {
		t.Fatalf("%d prompts, want 2", p)
	}
	if w, ty := tried(h.auth, "admin/wrong"), tried(h.auth, "admin/typo"); w != 1 || ty != 1 {
		t.Fatalf("logons: %d wrong, %d typo, want 1 each: %v", w, ty, h.auth.events())
	}
}

// "Not administrator" is a successful logon: it is no lockout risk, so
// every host still tries the credentials.
func TestBulkNotAdminDoesNotPoison(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.cfg.Credentials, _ = adauth.Parse("user", "good")
		h.cfg.Concurrency = 4
	})
	const n = 6
	for r := range h.c.ConnectAll(context.Background(), hostsN(n), session.BulkOptions{}) {
		if r.Result.State != session.Failed || r.Result.Diagnosis.Code != diag.NotAdmin {
			t.Fatalf("%s: %v %+v", r.Host.Name, r.Result.State, r.Result.Diagnosis)
		}
	}
	if got := h.auth.calls.Load(); got != n {
		t.Fatalf("%d logons, want %d", got, n)
	}
}
