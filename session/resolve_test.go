package session_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// fixedResolver answers every name with addrs and counts the calls.
type fixedResolver struct {
	addrs []netip.Addr
	calls atomic.Int32
}

func (r *fixedResolver) Resolve(_ context.Context, _ string) (session.Resolution, error) {
	r.calls.Add(1)
	return session.Resolution{Addrs: r.addrs, Source: discovery.SourceNetBIOS}, nil
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func failed(t *testing.T, s *session.Session) session.Result {
	t.Helper()
	collect(t, s)
	r := s.Result()
	if r.State != session.Failed {
		t.Fatalf("state %s, want Failed (err %v)", r.State, r.Err)
	}
	return r
}

func TestNameConflictSendsNothing(t *testing.T) {
	res := &fixedResolver{addrs: []netip.Addr{ip("127.0.3.10"), ip("127.0.3.11"), ip("127.0.3.10")}}
	h := newHarness(t, func(h *harness) { h.cfg.Resolver = res })
	r := failed(t, h.c.Connect(context.Background(), discovery.Host{Name: "LCREAL"}))
	if r.Diagnosis.Code != diag.NameConflict || !strings.Contains(r.Diagnosis.Summary, "127.0.3.10, 127.0.3.11") {
		t.Fatalf("diagnosis %+v", r.Diagnosis)
	}
	var ce *session.NameConflictError
	if !errors.Is(r.Err, session.ErrNameConflict) || !errors.As(r.Err, &ce) || !slices.Equal(ce.Addrs, []netip.Addr{ip("127.0.3.10"), ip("127.0.3.11")}) {
		t.Fatalf("err %v", r.Err)
	}
	if n := h.auth.calls.Load(); n != 0 || res.calls.Load() != 1 {
		t.Fatalf("authenticator called %d times, resolver %d: want 0 and 1", n, res.calls.Load())
	}
}

func TestResolvedNameIsExpected(t *testing.T) {
	res := &fixedResolver{addrs: []netip.Addr{ip("127.0.3.10")}}
	h := newHarness(t, func(h *harness) { h.cfg.Resolver = res })
	s := h.c.Connect(context.Background(), discovery.Host{Name: "LCREAL"})
	evs := until(t, s, func(e session.Event) bool { return e.State != session.Connecting })
	if last := evs[len(evs)-1]; last.State != session.Running || last.Addr != "127.0.3.10" || last.Result.Addr != "127.0.3.10" {
		t.Fatalf("last event %+v", last)
	}
	hosts, names := h.auth.calledWith()
	if !slices.Equal(hosts, []string{"127.0.3.10"}) || !slices.Equal(names, []string{"LCREAL"}) {
		t.Fatalf("authenticated %v expecting %v", hosts, names)
	}
	s.Close(context.Background())
}

func TestNameNotResolved(t *testing.T) {
	res := &fixedResolver{}
	h := newHarness(t, func(h *harness) { h.cfg.Resolver = res })
	r := failed(t, h.c.Connect(context.Background(), discovery.Host{Name: "NOBODY"}))
	if r.Diagnosis.Code != diag.NameNotResolved || !errors.Is(r.Err, session.ErrNoAddress) || h.auth.calls.Load() != 0 {
		t.Fatalf("diagnosis %+v err %v calls %d", r.Diagnosis, r.Err, h.auth.calls.Load())
	}
}

func TestFlaggedHostRefused(t *testing.T) {
	res := &fixedResolver{addrs: []netip.Addr{ip("127.0.3.10")}}
	h := newHarness(t, func(h *harness) { h.cfg.Resolver = res })
	r := failed(t, h.c.Connect(context.Background(), discovery.Host{Name: "LCREAL", Addrs: []netip.Addr{ip("127.0.3.66")},
		Conflict: "claims the name LCREAL, which DNS or the directory places at 127.0.3.10"}))
	if r.Diagnosis.Code != diag.NameConflict || !strings.Contains(r.Diagnosis.Summary, "127.0.3.66") || !errors.Is(r.Err, session.ErrNameConflict) {
		t.Fatalf("diagnosis %+v err %v", r.Diagnosis, r.Err)
	}
	if h.auth.calls.Load() != 0 || res.calls.Load() != 0 {
		t.Fatal("a flagged host was resolved or authenticated to")
	}
}

func TestTrustedAddressFirst(t *testing.T) {
	h := newHarness(t, nil)
	// The claimant's address arrived first; DNS (the directory) says .10.
	s := h.c.Connect(context.Background(), discovery.Host{Name: "LCREAL", DNSName: "lcreal.lab.example",
		Addrs: []netip.Addr{ip("127.0.3.66"), ip("127.0.3.10")}, TrustedAddrs: []netip.Addr{ip("127.0.3.10")}})
	until(t, s, func(e session.Event) bool { return e.State != session.Connecting })
	hosts, names := h.auth.calledWith()
	if !slices.Equal(hosts, []string{"127.0.3.10"}) || !slices.Equal(names, []string{"lcreal.lab.example"}) {
		t.Fatalf("authenticated %v expecting %v", hosts, names)
	}
	s.Close(context.Background())
}

func TestAddressLiteralExpectsNoName(t *testing.T) {
	h := newHarness(t, nil)
	s := h.c.Connect(context.Background(), discovery.Host{Name: "127.0.3.10", Addrs: []netip.Addr{ip("127.0.3.10")}})
	until(t, s, func(e session.Event) bool { return e.State != session.Connecting })
	if _, names := h.auth.calledWith(); !slices.Equal(names, []string{""}) {
		t.Fatalf("expected names %q, want none", names)
	}
	s.Close(context.Background())
}

func TestIdentityMismatchFailsWithoutPrompt(t *testing.T) {
	prompts := atomic.Int32{}
	h := newHarness(t, func(h *harness) {
		h.auth.identity = "LCROGUE"
		h.cfg.Prompt = func(context.Context, adauth.PromptRequest) (adauth.Credentials, error) {
			prompts.Add(1)
			return adauth.Credentials{}, adauth.ErrPromptCanceled
		}
	})
	r := failed(t, h.c.Connect(context.Background(), host(1)))
	if r.Diagnosis.Code != diag.IdentityMismatch || !errors.Is(r.Err, session.ErrIdentityMismatch) || r.Step != session.StepAuthenticate {
		t.Fatalf("result %+v", r)
	}
	if prompts.Load() != 0 || h.auth.calls.Load() != 1 {
		t.Fatalf("prompts %d, authentications %d: a wrong computer must not get other credentials", prompts.Load(), h.auth.calls.Load())
	}
}
