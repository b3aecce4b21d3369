package session_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// Config.Fallback decides after each failed attempt: it may go on where
// DefaultFallback would stop (access denied here), stop where it would go
// on, or end the session with its own error.
func TestFallbackHook(t *testing.T) {
	errPolicy := errors.New("policy: no WMI on this site")
	for _, c := range []struct {
		name    string
		kind    error
		hook    func(context.Context, session.Attempt) (bool, error)
		method  string // "" when the session fails
		wmiCall int32
		err     error
	}{
		{"default falls back", deploy.ErrLaunchUnsupported, nil, "wmi", 1, nil},
		{"default stops on access denied", deploy.ErrAccessDenied, nil, "", 0, deploy.ErrAccessDenied},
		{"hook goes on", deploy.ErrAccessDenied, func(context.Context, session.Attempt) (bool, error) { return true, nil }, "wmi", 1, nil},
		{"hook stops", deploy.ErrLaunchUnsupported, func(context.Context, session.Attempt) (bool, error) { return false, nil }, "", 0, deploy.ErrLaunchUnsupported},
		{"hook errs", deploy.ErrLaunchUnsupported, func(context.Context, session.Attempt) (bool, error) { return true, errPolicy }, "", 0, errPolicy},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []session.Attempt
			h := newHarness(t, func(h *harness) {
				h.ls[0].err = launchErr("scm", c.kind)
				if c.hook != nil {
					h.cfg.Fallback = func(ctx context.Context, a session.Attempt) (bool, error) {
						mu.Lock()
						seen = append(seen, a)
						mu.Unlock()
						return c.hook(ctx, a)
					}
				}
			})
			s := h.c.Connect(context.Background(), host(1))
			r, _ := s.Wait(context.Background())
			defer s.Close(context.Background())
			if c.method != "" && (r.State != session.Running || r.Method != c.method) || c.method == "" && (r.State != session.Failed || !errors.Is(r.Err, c.err)) {
				t.Fatalf("%v %q %v", r.State, r.Method, r.Err)
			}
			if n := h.ls[1].calls.Load(); n != c.wmiCall {
				t.Fatalf("wmi called %d times", n)
			}
			if c.hook != nil && (len(seen) != 1 || seen[0].Launcher != "scm" || !errors.Is(seen[0].Err, c.kind) || seen[0].Diagnosis.Code != "scm-diag") {
				t.Fatalf("hook saw %+v", seen)
			}
		})
	}
}

// An attempt that may have left its applet running is never followed by
// another launcher, whatever the hook says: the hook is not even asked.
func TestFallbackHookCannotRetryLeftBehind(t *testing.T) {
	asked := 0
	h := newHarness(t, func(h *harness) {
		h.ls[0].err = launchErr("scm", deploy.ErrLaunchUnsupported)
		h.ls[0].err.(*deploy.LaunchError).Err = fmt.Errorf("start failed (and service x could not be removed: %w)", deploy.ErrAttemptLeftBehind)
		h.cfg.Fallback = func(context.Context, session.Attempt) (bool, error) { asked++; return true, nil }
	})
	r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
	if r.State != session.Failed || !errors.Is(r.Err, deploy.ErrAttemptLeftBehind) || h.ls[1].calls.Load() != 0 || asked != 0 {
		t.Fatalf("%v %v; wmi calls %d, hook asked %d times", r.State, r.Err, h.ls[1].calls.Load(), asked)
	}
	if ok, err := session.DefaultFallback(context.Background(), r.Attempts[0]); ok || err != nil {
		t.Fatalf("DefaultFallback: %v %v", ok, err)
	}
}

// Connect tries the host's trusted addresses in order: the first refuses
// the connection, the second answers and is the session's address. The
// untrusted (claimed) address is never tried.
func TestTrustedAddrsTriedInOrder(t *testing.T) {
	a := netip.MustParseAddr
	h := newHarness(t, func(h *harness) { h.auth.unreachable = map[string]bool{"127.0.3.1": true} })
	hst := discovery.Host{Name: "LCREAL", DNSName: "lcreal.lab.example",
		Addrs:        []netip.Addr{a("127.0.3.66"), a("127.0.3.1"), a("127.0.3.2")},
		TrustedAddrs: []netip.Addr{a("127.0.3.1"), a("127.0.3.2")}}
	s := h.c.Connect(context.Background(), hst)
	evs := until(t, s, func(e session.Event) bool { return e.State != session.Connecting })
	defer s.Close(context.Background())
	last := evs[len(evs)-1]
	if last.State != session.Running || last.Addr != "127.0.3.2" || last.Result.Addr != "127.0.3.2" || s.Result().Addr != "127.0.3.2" {
		t.Fatalf("last event %v at %s (result %s)", last.State, last.Addr, s.Result().Addr)
	}
	hosts, names := h.auth.calledWith()
	if !slices.Equal(hosts, []string{"127.0.3.1", "127.0.3.2"}) || !slices.Equal(names, []string{"lcreal.lab.example", "lcreal.lab.example"}) {
		t.Fatalf("authenticated %v expecting %v", hosts, names)
	}

	// Every trusted address unreachable: the last error, and still no
	// untrusted address.
	h2 := newHarness(t, func(h *harness) { h.auth.unreachable = map[string]bool{"127.0.3.1": true, "127.0.3.2": true} })
	r := failed(t, h2.c.Connect(context.Background(), hst))
	if !errors.Is(r.Err, adauth.ErrUnreachable) || r.Addr != "127.0.3.2" {
		t.Fatalf("%v at %s", r.Err, r.Addr)
	}
	if hosts, _ := h2.auth.calledWith(); !slices.Equal(hosts, []string{"127.0.3.1", "127.0.3.2"}) {
		t.Fatalf("authenticated %v", hosts)
	}
}

// A logon failure at the first trusted address is not a reason to try
// the next: the credentials were refused, and the lockout rules apply.
func TestTrustedAddrsNoNextAfterRefusal(t *testing.T) {
	a := netip.MustParseAddr
	h := newHarness(t, func(h *harness) { h.cfg.Credentials, _ = adauth.Parse("admin", "wrong") })
	r := failed(t, h.c.Connect(context.Background(), discovery.Host{Name: "LCREAL", TrustedAddrs: []netip.Addr{a("127.0.3.1"), a("127.0.3.2")}, Addrs: []netip.Addr{a("127.0.3.1"), a("127.0.3.2")}}))
	if !errors.Is(r.Err, adauth.ErrLogonFailure) {
		t.Fatal(r.Err)
	}
	if hosts, _ := h.auth.calledWith(); !slices.Equal(hosts, []string{"127.0.3.1"}) {
		t.Fatalf("authenticated %v", hosts)
	}
}

// A per-session prompt replaces Config.Prompt and is told which session
// asks and for which host; Config.Authorize gets the technician.
func TestConnectWithPrompt(t *testing.T) {
	var mu sync.Mutex
	var reqs []adauth.PromptRequest
	var who string
	h := newHarness(t, func(h *harness) {
		h.cfg.Credentials = adauth.Credentials{}
		h.cfg.Prompt = func(context.Context, adauth.PromptRequest) (adauth.Credentials, error) {
			t.Error("Config.Prompt asked although the session has its own")
			return adauth.Credentials{}, adauth.ErrPromptCanceled
		}
		h.cfg.Authorize = func(_ context.Context, w string, _ discovery.Host) error { who = w; return nil }
	})
	s := h.c.ConnectWith(context.Background(), host(1), session.ConnectOptions{
		Technician: "bob",
		Prompt: func(_ context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
			mu.Lock()
			reqs = append(reqs, req)
			mu.Unlock()
			return adauth.Parse("admin", "good")
		},
	})
	r, _ := s.Wait(context.Background())
	defer s.Close(context.Background())
	if r.State != session.Running || who != "bob" {
		t.Fatalf("%v %v, technician %q", r.State, r.Err, who)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 1 || reqs[0].Session != s.ID() || reqs[0].Host.Name != "PC01" || reqs[0].Addr != "127.0.2.2" || !errors.Is(reqs[0].Reason, adauth.ErrNoCredentials) {
		t.Fatalf("prompt requests %+v", reqs)
	}
}
