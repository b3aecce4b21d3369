package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

func TestSuccessThenClose(t *testing.T) {
	h := newHarness(t, nil)
	s := h.c.Connect(context.Background(), host(1))
	if st, _ := s.State(); st == session.Failed || st == session.Closed {
		t.Fatalf("Connect returned in %s", st)
	}
	evs := until(t, s, func(e session.Event) bool { return e.State != session.Connecting })
	want := []string{"Connecting/authenticate", "Connecting/preflight", "Connecting/deploy", "Connecting/launch[scm]", "Connecting/checkin[scm]", "Running/checkin[scm]"}
	if got := states(evs); !slices.Equal(got, want) {
		t.Fatalf("events %v\nwant %v", got, want)
	}
	last := evs[len(evs)-1]
	if last.Result == nil || last.Result.Method != "scm" || last.Result.Applet == nil || last.Result.Applet.PID != 4242 || last.Result.Account != "admin" {
		t.Fatalf("running result %+v", last.Result)
	}
	if c, err := s.Conn(context.Background()); c == nil || err != nil {
		t.Fatalf("no check-in connection while Running: %v", err)
	}
	if h.ls[0].running.Load() != 1 || h.ls[1].calls.Load() != 0 {
		t.Fatalf("applets running %d, wmi calls %d", h.ls[0].running.Load(), h.ls[1].calls.Load())
	}
	cl, err := s.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rest := collect(t, s)
	if got := states(rest); !slices.Equal(got, []string{"Running/cleanup[scm]", "Closed/cleanup[scm]"}) {
		t.Fatalf("close events %v", got)
	}
	if !cl.Clean() || !cl.AppletStopped || !slices.Equal(cl.Undone, []string{"applet stopped (scm)", "service of scm", "file " + s.ID() + ".ticket", "file applet.exe"}) {
		t.Fatalf("cleanup %+v", cl)
	}
	if h.ls[0].running.Load() != 0 {
		t.Fatal("applet still running after Close")
	}
	r := s.Result()
	if r.State != session.Closed || r.Err != nil || r.Ready.IsZero() || r.Ended.IsZero() {
		t.Fatalf("result %+v", r)
	}
	// Close again returns the same outcome.
	if cl2, err := s.Close(context.Background()); err != nil || len(cl2.Undone) != len(cl.Undone) {
		t.Fatalf("second Close: %+v %v", cl2, err)
	}
}

func TestProgressCoalescedAndOrdered(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.dep.steps = 5000 })
	s := h.c.Connect(context.Background(), host(1))
	<-s.Ready() // nobody reads while the copy runs
	s.Close(context.Background())
	evs := collect(t, s)
	n := 0
	var lastDone int64
	for _, e := range evs {
		if e.Kind == session.EventProgress {
			n++
			if e.Done < lastDone {
				t.Fatal("progress went backwards")
			}
			lastDone = e.Done
		}
	}
	if n != 1 || lastDone != 5000*1000 {
		t.Fatalf("%d progress events (last %d), want the latest one only", n, lastDone)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Time.Before(evs[i-1].Time) {
			t.Fatalf("event %d is older than the one before", i)
		}
	}
	if got := states(evs); got[len(got)-1] != "Closed/cleanup[scm]" {
		t.Fatalf("events %v", got)
	}
}

func TestPromptThenSuccess(t *testing.T) {
	var reqs []adauth.PromptRequest
	var mu sync.Mutex
	h := newHarness(t, func(h *harness) {
		h.cfg.Credentials, _ = adauth.Parse("user", "good")
		h.cfg.RememberCredentials = true
		h.cfg.Prompt = func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
			mu.Lock()
			reqs = append(reqs, req)
			n := len(reqs)
			mu.Unlock()
			if n == 1 {
				return adauth.Parse("admin", "wrong")
			}
			return adauth.Parse("admin", "good")
		}
	})
	s := h.c.Connect(context.Background(), host(1))
	evs := until(t, s, func(e session.Event) bool { return e.State != session.Connecting })
	want := []string{"Connecting/authenticate", "Connecting/credentials", "Connecting/authenticate", "Connecting/credentials", "Connecting/authenticate", "Connecting/preflight"}
	if got := states(evs); len(got) < len(want) || !slices.Equal(got[:len(want)], want) || got[len(got)-1] != "Running/checkin[scm]" {
		t.Fatalf("events %v", got)
	}
	if len(reqs) != 2 || reqs[0].Diagnosis.Code != diag.NotAdmin || reqs[1].Diagnosis.Code != diag.LogonFailure || reqs[0].Addr != "127.0.2.2" {
		t.Fatalf("prompt requests %+v", reqs)
	}
	if cr := h.c.Credentials(); cr.User != "admin" {
		t.Fatalf("prompted credentials not remembered: %v", cr)
	}
	s.Close(context.Background())
	// The next Connect uses them without a prompt.
	s2 := h.c.Connect(context.Background(), host(2))
	if r, _ := s2.Wait(context.Background()); r.State != session.Running || len(reqs) != 2 {
		t.Fatalf("second connect: %v, %d prompts", r.State, len(reqs))
	}
	s2.Close(context.Background())
}

func TestPromptRefused(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.cfg.Credentials, _ = adauth.Parse("user", "good")
		h.cfg.Prompt = func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
			return adauth.Credentials{}, adauth.ErrPromptCanceled
		}
	})
	s := h.c.Connect(context.Background(), host(1))
	evs := collect(t, s)
	last := evs[len(evs)-1]
	if last.State != session.Failed || last.Step != session.StepCredentials || last.Diagnosis.Code != diag.PromptCanceled {
		t.Fatalf("last event %v %+v", brief(evs), last.Diagnosis)
	}
	if !errors.Is(last.Err, adauth.ErrPromptCanceled) || !errors.Is(last.Result.Err, adauth.ErrPromptCanceled) {
		t.Fatalf("err %v", last.Err)
	}
	if strings.Contains(last.Err.Error(), "good") {
		t.Fatal("password in error")
	}
	if h.dep.steps != 0 || h.ls[0].calls.Load() != 0 {
		t.Fatal("work done after a refused prompt")
	}
}

func TestNoPromptForGuestOnly(t *testing.T) {
	prompted := false
	h := newHarness(t, func(h *harness) {
		h.cfg.Credentials, _ = adauth.Parse("guest", "x")
		h.cfg.Prompt = func(context.Context, adauth.PromptRequest) (adauth.Credentials, error) {
			prompted = true
			return adauth.Credentials{}, adauth.ErrPromptCanceled
		}
	})
	r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
	if r.State != session.Failed || r.Step != session.StepAuthenticate || r.Diagnosis.Code != diag.GuestOnly || prompted {
		t.Fatalf("result %v %v %+v prompted=%v", r.State, r.Step, r.Diagnosis, prompted)
	}
	if !errors.Is(r.Err, adauth.ErrGuest) {
		t.Fatalf("err %v", r.Err)
	}
}

func TestFallback(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.ls[0].err = launchErr("scm", deploy.ErrLaunchUnsupported) })
	s := h.c.Connect(context.Background(), host(1))
	evs := until(t, s, func(e session.Event) bool { return e.State != session.Connecting })
	got := states(evs)
	want := []string{"Connecting/launch[scm]", "attempt:scm", "Connecting/launch[wmi]", "Connecting/checkin[wmi]", "Running/checkin[wmi]"}
	if !slices.Equal(got[len(got)-len(want):], want) {
		t.Fatalf("events %v", got)
	}
	r := s.Result()
	if r.Method != "wmi" || len(r.Attempts) != 1 || r.Attempts[0].Launcher != "scm" || r.Attempts[0].Diagnosis.Code != "scm-diag" || !errors.Is(r.Attempts[0].Err, deploy.ErrLaunchUnsupported) {
		t.Fatalf("result %+v", r)
	}
	cl, _ := s.Close(context.Background())
	if !slices.Contains(cl.Undone, "service of wmi") || h.ls[1].stops.Load() != 1 {
		t.Fatalf("cleanup %+v", cl)
	}
}

// A failed attempt that could not remove what it created (its service,
// perhaps a running process) stops the fallback: a second launcher would
// start another applet beside it. The session fails with that attempt's
// diagnosis, and the next launcher is never called.
func TestNoFallbackAfterLeftBehind(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.ls[0].err = launchErr("scm", deploy.ErrNotServiceAware)
		h.ls[0].err.(*deploy.LaunchError).Err = fmt.Errorf("start: 1053 (and service x could not be removed: %w)", deploy.ErrAttemptLeftBehind)
	})
	s := h.c.Connect(context.Background(), host(1))
	r, _ := s.Wait(context.Background())
	if r.State != session.Failed || r.Step != session.StepLaunch || !errors.Is(r.Err, deploy.ErrAttemptLeftBehind) || len(r.Attempts) != 1 {
		t.Fatalf("%v %v %v attempts %+v", r.State, r.Step, r.Err, r.Attempts)
	}
	if n := h.ls[1].calls.Load(); n != 0 {
		t.Fatalf("the next launcher was called %d times after an attempt left its service behind", n)
	}
}

// The launch spec carries the deployed path, the session, the console's
// settings and the check-in ticket.
func TestLaunchSpec(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.cfg.AppletArgs = []string{"-heartbeat", "1s"}
		h.cfg.ServicePrefix = "acme-"
		h.cfg.AppletParams = map[string]string{"Mode": "support"}
		h.cfg.Vendor, h.cfg.AppletName = "Acme", "Applet"
	})
	s := h.c.Connect(context.Background(), host(1))
	r, _ := s.Wait(context.Background())
	defer s.Close(context.Background())
	h.ls[0].mu.Lock()
	spec := h.ls[0].spec
	h.ls[0].mu.Unlock()
	if r.State != session.Running || spec.SessionID != s.ID() || spec.Path != `C:\Windows\Temp\applet-`+s.ID()+`.exe` ||
		spec.ServicePrefix != "acme-" || spec.Params["Mode"] != "support" || spec.Vendor != "Acme" || spec.Applet != "Applet" {
		t.Fatalf("%v spec %+v", r.State, spec)
	}
	if len(spec.Args) != 4 || spec.Args[0] != "-heartbeat" || spec.Args[2] != "-ticket-file" || spec.Args[3] != s.ID()+".ticket" {
		t.Fatalf("args %q", spec.Args)
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The launch context outlives Launch until cleanup, and ends after it.
func TestLaunchContextLifetime(t *testing.T) {
	h := newHarness(t, nil)
	s := h.c.Connect(context.Background(), host(1))
	if r, _ := s.Wait(context.Background()); r.State != session.Running {
		t.Fatal(r.Err)
	}
	if err := h.ls[0].ctx().Err(); err != nil {
		t.Fatalf("launch context ended while Running: %v", err)
	}
	s.Close(context.Background())
	if h.ls[0].ctxAlive.Load() != 1 || h.ls[0].ctx().Err() == nil {
		t.Fatalf("launch context: alive at Stop %v, ended after Close %v", h.ls[0].ctxAlive.Load() == 1, h.ls[0].ctx().Err())
	}
}

// A launcher that never answers times out and the next one is tried.
func TestLaunchTimeoutFallsBack(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.ls[0].hang = true
		h.cfg.Timeouts.Launch = 100 * time.Millisecond
	})
	s := h.c.Connect(context.Background(), host(1))
	r, _ := s.Wait(context.Background())
	defer s.Close(context.Background())
	if r.State != session.Running || r.Method != "wmi" || len(r.Attempts) != 1 || !errors.Is(r.Attempts[0].Err, deploy.ErrTimeout) || r.Attempts[0].Diagnosis.Code != diag.Timeout {
		t.Fatalf("%v %v %+v", r.State, r.Method, r.Attempts)
	}
}

func TestEveryLauncherFails(t *testing.T) {
	for _, kinds := range [][2]error{
		{deploy.ErrLaunchUnsupported, deploy.ErrUnreachable},
		{deploy.ErrUnreachable, deploy.ErrTimeout},
		{deploy.ErrNotServiceAware, deploy.ErrLaunchUnsupported},
	} {
		t.Run(kinds[0].Error(), func(t *testing.T) {
			h := newHarness(t, func(h *harness) {
				h.ls[0].err = launchErr("scm", kinds[0])
				h.ls[1].err = launchErr("wmi", kinds[1])
			})
			s := h.c.Connect(context.Background(), host(1))
			evs := collect(t, s)
			last := evs[len(evs)-1]
			r := last.Result
			if last.State != session.Failed || last.Step != session.StepLaunch || r == nil || len(r.Attempts) != 2 {
				t.Fatalf("events %v", brief(evs))
			}
			if !errors.Is(r.Err, session.ErrLaunchFailed) || !errors.Is(r.Err, kinds[1]) {
				t.Fatalf("err %v", r.Err)
			}
			for i, name := range []string{"scm", "wmi"} {
				if a := r.Attempts[i]; a.Launcher != name || !errors.Is(a.Err, kinds[i]) || a.Diagnosis.Code != diag.Code(name+"-diag") {
					t.Fatalf("attempt %d: %+v", i, a)
				}
			}
			// The files copied before are removed: the applet, and the
			// ticket file that each launcher got afresh.
			tf := "file " + r.Session + ".ticket"
			if !r.Cleanup.Clean() || !slices.Equal(r.Cleanup.Undone, []string{tf, tf, "file applet.exe"}) {
				t.Fatalf("cleanup %+v", r.Cleanup)
			}
		})
	}
}

func TestAccessDeniedDoesNotFallBack(t *testing.T) {
	t.Run("domain account", func(t *testing.T) {
		h := newHarness(t, func(h *harness) { h.ls[0].err = launchErr("scm", deploy.ErrAccessDenied) })
		r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
		if r.State != session.Failed || h.ls[1].calls.Load() != 0 || len(r.Attempts) != 1 || r.Diagnosis.Code != "scm-diag" {
			t.Fatalf("%v attempts %d wmi calls %d diag %+v", r.State, len(r.Attempts), h.ls[1].calls.Load(), r.Diagnosis)
		}
	})
	t.Run("local account: UAC remote restrictions", func(t *testing.T) {
		h := newHarness(t, func(h *harness) {
			h.auth.local = true
			h.ls[0].err = launchErr("scm", deploy.ErrAccessDenied)
		})
		r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
		if r.State != session.Failed || r.Diagnosis.Code != diag.UACRemote || !strings.Contains(r.Diagnosis.Fix, "LocalAccountTokenFilterPolicy") {
			t.Fatalf("%v %+v", r.State, r.Diagnosis)
		}
	})
	t.Run("local account, forceguest=1", func(t *testing.T) {
		one := uint32(1)
		h := newHarness(t, func(h *harness) {
			h.auth.local = true
			h.pre.p = &deploy.Preflight{ForceGuest: &one}
			h.ls[0].err = launchErr("scm", deploy.ErrAccessDenied)
		})
		r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
		if r.Diagnosis.Code != diag.GuestOnly || len(r.Notes) != 1 || r.Notes[0].Code != diag.GuestOnly {
			t.Fatalf("%+v notes %+v", r.Diagnosis, r.Notes)
		}
	})
}

func TestPreflightFailureIsANote(t *testing.T) {
	zero := uint32(1)
	h := newHarness(t, func(h *harness) {
		h.pre.p = &deploy.Preflight{RemoteRegistryOff: true, LmCompatibilityLevel: &zero}
		h.pre.err = errors.New("winreg pipe not available")
	})
	s := h.c.Connect(context.Background(), host(1))
	r, _ := s.Wait(context.Background())
	defer s.Close(context.Background())
	var codes []diag.Code
	for _, n := range r.Notes {
		codes = append(codes, n.Code)
	}
	if r.State != session.Running || !slices.Equal(codes, []diag.Code{diag.RemoteRegistryOff, diag.NTLMLevelLow, diag.PreflightFailed}) {
		t.Fatalf("%v notes %v", r.State, codes)
	}
}

func TestDeployFailure(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.dep.err = errors.New("disk full") })
	r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
	if r.State != session.Failed || r.Step != session.StepDeploy || r.Diagnosis.Code != diag.Other || !strings.Contains(r.Diagnosis.Summary, "disk full") {
		t.Fatalf("%v %v %+v", r.State, r.Step, r.Diagnosis)
	}
}

func TestAuthorize(t *testing.T) {
	var who string
	h := newHarness(t, func(h *harness) {
		h.cfg.Authorize = func(ctx context.Context, w string, hst discovery.Host) error {
			who = w
			if hst.Name == "PC00" {
				return errors.New("alice may not connect to PC00")
			}
			return nil
		}
	})
	s := h.c.ConnectWith(context.Background(), host(0), session.ConnectOptions{Technician: "alice"})
	evs := collect(t, s)
	last := evs[len(evs)-1]
	if got := states(evs); !slices.Equal(got, []string{"Connecting/authorize", "Connecting/cleanup", "Failed/authorize"}) {
		t.Fatalf("events %v", got)
	}
	if who != "alice" || !errors.Is(last.Err, session.ErrUnauthorized) || last.Diagnosis.Code != "not-authorised" || h.auth.calls.Load() != 0 {
		t.Fatalf("who %q err %v diag %+v auth calls %d", who, last.Err, last.Diagnosis, h.auth.calls.Load())
	}
	s2 := h.c.ConnectWith(context.Background(), host(2), session.ConnectOptions{Technician: "alice"})
	if r, _ := s2.Wait(context.Background()); r.State != session.Running {
		t.Fatalf("authorised host: %v %v", r.State, r.Err)
	}
	s2.Close(context.Background())
}

func TestCheckinTimeout(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.ls[0].noApplet = true
		h.cfg.Timeouts.Checkin = 200 * time.Millisecond
	})
	r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
	if r.State != session.Failed || r.Step != session.StepCheckin || !errors.Is(r.Err, session.ErrCheckin) || r.Diagnosis.Code != "checkin-timeout" ||
		!strings.Contains(r.Diagnosis.Summary, h.c.CheckinAddr()) {
		t.Fatalf("%v %v %v %+v", r.State, r.Step, r.Err, r.Diagnosis)
	}
	if h.ls[0].stops.Load() != 1 || !slices.Contains(r.Cleanup.Undone, "service of scm") {
		t.Fatalf("handle not stopped / journal not undone: %+v", r.Cleanup)
	}
}

func TestAppletLost(t *testing.T) {
	h := newHarness(t, nil)
	s := h.c.Connect(context.Background(), host(1))
	if r, _ := s.Wait(context.Background()); r.State != session.Running {
		t.Fatal(r.Err)
	}
	conn, err := s.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close() // as if the applet's connection dropped
	<-s.Done()
	r := s.Result()
	if r.State != session.Failed || r.Step != session.StepCheckin || !errors.Is(r.Err, session.ErrAppletLost) || r.Cleanup == nil {
		t.Fatalf("%v %v %v", r.State, r.Step, r.Err)
	}
}

func TestReadinessHook(t *testing.T) {
	called := false
	h := newHarness(t, func(h *harness) {
		h.ls[0].noApplet = true
		h.cfg.Readiness = func(ctx context.Context, tg *deploy.Target, hd deploy.Handle) error {
			called = tg.AppletPath != "" && hd.PID() == 4242
			return nil
		}
	})
	s := h.c.Connect(context.Background(), host(1))
	if r, _ := s.Wait(context.Background()); r.State != session.Running || !called || h.c.CheckinAddr() != "" {
		t.Fatalf("%v called=%v addr %q", r.State, called, h.c.CheckinAddr())
	}
	s.Close(context.Background())
}

// blockedAt starts a session blocked in step and returns it once the
// session says it is there.
func blockedAt(t *testing.T, step session.Step, ctx context.Context) (*harness, *session.Session, []session.Event) {
	t.Helper()
	h := newHarness(t, func(h *harness) {
		switch step {
		case session.StepAuthorize:
			h.cfg.Authorize = func(ctx context.Context, _ string, _ discovery.Host) error {
				<-ctx.Done()
				return ctx.Err()
			}
		case session.StepCredentials:
			h.cfg.Credentials = adauth.Credentials{}
			h.cfg.Prompt = func(ctx context.Context, _ adauth.PromptRequest) (adauth.Credentials, error) {
				<-ctx.Done()
				return adauth.Credentials{}, ctx.Err()
			}
		case session.StepCheckin:
			h.ls[0].noApplet = true
		default:
			h.g.block(string(step))
		}
	})
	s := h.c.Connect(ctx, host(1))
	evs := until(t, s, func(e session.Event) bool { return e.Step == step })
	return h, s, evs
}

var blockableSteps = []session.Step{session.StepAuthorize, session.StepAuthenticate, session.StepCredentials, session.StepPreflight,
	session.StepDeploy, session.StepLaunch, session.StepCheckin}

func TestCancelInEveryStep(t *testing.T) {
	for _, step := range blockableSteps {
		t.Run(string(step), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			h, s, _ := blockedAt(t, step, ctx)
			cancel()
			evs := collect(t, s)
			last := evs[len(evs)-1]
			if last.State != session.Failed || last.Step != step || !errors.Is(last.Err, context.Canceled) {
				t.Fatalf("last %v err %v", brief(evs), last.Err)
			}
			checkCleaned(t, h, last.Result)
		})
	}
}

// Connect's context bounds Connecting only: once Running, its end (a
// request's context, say) does not close the session; Close does.
func TestContextBoundsConnectingOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := newHarness(t, nil)
	s := h.c.Connect(ctx, host(1))
	until(t, s, func(e session.Event) bool { return e.State == session.Running })
	cancel()
	// The session's goroutine would close it at once if it still
	// watched ctx: an absence can only be checked by giving it time.
	select {
	case <-s.Done():
		t.Fatalf("session ended after its Connect context: %v", s.Result().Err)
	case <-time.After(200 * time.Millisecond):
	}
	if st, _ := s.State(); st != session.Running || h.ls[0].running.Load() != 1 {
		t.Fatalf("state %v, applets running %d", st, h.ls[0].running.Load())
	}
	if c, err := s.Conn(ctx); c == nil || err != nil {
		t.Fatalf("Conn with the ended context while Running: %v", err)
	}
	cl, err := s.Close(context.Background())
	if err != nil || s.Result().State != session.Closed {
		t.Fatalf("close: %v %v", err, s.Result().State)
	}
	evs := collect(t, s)
	if got := states(evs); !slices.Equal(got[len(got)-2:], []string{"Running/cleanup[scm]", "Closed/cleanup[scm]"}) {
		t.Fatalf("events %v", got)
	}
	r := s.Result()
	checkCleaned(t, h, &r)
	if h.ls[0].running.Load() != 0 || !cl.AppletStopped {
		t.Fatal("applet still running")
	}
}

func TestCloseInEveryStep(t *testing.T) {
	for _, step := range blockableSteps {
		t.Run(string(step), func(t *testing.T) {
			h, s, _ := blockedAt(t, step, context.Background())
			cl, err := s.Close(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			evs := collect(t, s)
			last := evs[len(evs)-1]
			if last.State != session.Closed || !errors.Is(last.Result.Err, session.ErrClosed) || last.Result.Step != step {
				t.Fatalf("last %v result %+v", brief(evs), last.Result)
			}
			if !cl.Clean() {
				t.Fatalf("cleanup %+v", cl)
			}
			checkCleaned(t, h, last.Result)
		})
	}
}

// Close while a failed session is still cleaning up waits for that
// cleanup and returns it; the session stays Failed.
func TestCloseDuringFailureCleanup(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.ls[0].err = launchErr("scm", deploy.ErrAccessDenied)
		h.g.block("undo")
	})
	s := h.c.Connect(context.Background(), host(1))
	until(t, s, func(e session.Event) bool { return e.Step == session.StepCleanup })
	closed := make(chan session.Cleanup)
	go func() {
		cl, _ := s.Close(context.Background())
		closed <- cl
	}()
	select {
	case <-closed:
		t.Fatal("Close returned before the cleanup finished")
	case <-time.After(50 * time.Millisecond):
	}
	h.g.mu.Lock()
	close(h.g.closed["undo"])
	h.g.mu.Unlock()
	cl := <-closed
	if r := s.Result(); r.State != session.Failed || r.Step != session.StepLaunch || !slices.Equal(cl.Undone, []string{"file " + s.ID() + ".ticket", "file applet.exe"}) {
		t.Fatalf("%v %v %+v", r.State, r.Step, cl)
	}
}

func checkCleaned(t *testing.T, h *harness, r *session.Result) {
	t.Helper()
	if r == nil || r.Cleanup == nil {
		t.Fatal("no cleanup report")
	}
	h.jmu.Lock()
	defer h.jmu.Unlock()
	for _, j := range h.journals {
		if len(j.open()) != 0 {
			t.Fatalf("journal left open: %v", j.open())
		}
	}
	for _, l := range h.ls {
		if l.running.Load() != 0 {
			t.Fatalf("%s applet running", l.name)
		}
	}
}

func TestCloseKeep(t *testing.T) {
	h := newHarness(t, nil)
	s := h.c.Connect(context.Background(), host(1))
	s.Wait(context.Background())
	cl, err := s.CloseWith(context.Background(), session.CloseOptions{Keep: true})
	if err != nil || !cl.Kept || cl.Clean() || len(cl.Undone) != 0 {
		t.Fatalf("%+v %v", cl, err)
	}
	if h.ls[0].running.Load() != 1 || len(h.journals[0].open()) != 3 {
		t.Fatalf("applet running %d, journal %v", h.ls[0].running.Load(), h.journals[0].open())
	}
	conn, err := s.Conn(context.Background())
	if conn == nil || err != nil {
		t.Fatalf("kept connection not handed over: %v", err)
	}
	conn.Stop(context.Background())
	conn.Close()
}

func TestCleanupLeftovers(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.undo.failOn = "file applet.exe"
	})
	s := h.c.Connect(context.Background(), host(1))
	s.Wait(context.Background())
	cl, _ := s.Close(context.Background())
	if cl.Clean() || len(cl.Left) != 1 || cl.Left[0].What != "file applet.exe" {
		t.Fatalf("%+v", cl)
	}
}

// A launcher whose Stop hangs cannot hold Close past Timeouts.Cleanup.
func TestHungStopBoundedByCleanupTimeout(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.ls[0].hangStop = true
		h.cfg.Timeouts.Cleanup = 300 * time.Millisecond
	})
	s := h.c.Connect(context.Background(), host(1))
	s.Wait(context.Background())
	cl, err := s.Close(context.Background())
	if err != nil || cl.Clean() || len(cl.Left) == 0 || !strings.Contains(cl.Left[0].What, "scm") || !errors.Is(cl.Left[0].Err, context.DeadlineExceeded) {
		t.Fatalf("%+v %v", cl, err)
	}
	if s.Result().State != session.Closed || !slices.Contains(cl.Undone, "file applet.exe") {
		t.Fatalf("state %v, undone %v: the journal was not undone after the hung stop", s.Result().State, cl.Undone)
	}
}

// A reader that never reads one session does not hold up another.
func TestSlowReaderDoesNotStallOthers(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.dep.steps = 200 })
	stuck := h.c.Connect(context.Background(), host(1))
	_ = stuck.Events() // delivery starts, and nobody receives
	other := h.c.Connect(context.Background(), host(2))
	evs := until(t, other, func(e session.Event) bool { return e.State == session.Running })
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	// The unread session reached Running too: its work did not wait.
	if r, _ := stuck.Wait(context.Background()); r.State != session.Running {
		t.Fatal(r.Err)
	}
	other.Close(context.Background())
	stuck.Close(context.Background())
	// Every one of its events is still there, in order.
	got := states(collect(t, stuck))
	if got[0] != "Connecting/authenticate" || got[len(got)-1] != "Closed/cleanup[scm]" {
		t.Fatalf("events %v", got)
	}
}

func TestBulk(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.cfg.Concurrency = 3
		h.g.block("launch")
	})
	var hosts []discovery.Host
	for i := range 12 {
		hosts = append(hosts, host(i))
	}
	started := make(chan *session.Session, len(hosts))
	res := h.c.ConnectAll(context.Background(), hosts, session.BulkOptions{OnStart: func(s *session.Session) { started <- s }})
	// Three sessions reach launch; no fourth starts until one leaves Connecting.
	for range 3 {
		s := <-started
		until(t, s, func(e session.Event) bool { return e.Step == session.StepLaunch })
	}
	select {
	case s := <-started:
		t.Fatalf("a fourth session %s started while three were connecting", s.Host().Name)
	default:
	}
	h.g.mu.Lock()
	close(h.g.closed["launch"])
	h.g.mu.Unlock()
	seen := map[string]bool{}
	for r := range res {
		if r.Result.State != session.Running || r.Took <= 0 {
			t.Fatalf("%s: %v %v", r.Host.Name, r.Result.State, r.Result.Err)
		}
		seen[r.Host.Name] = true
		r.Session.Close(context.Background())
	}
	if len(seen) != len(hosts) || h.auth.peak.Load() > 3 {
		t.Fatalf("%d results, peak concurrency %d", len(seen), h.auth.peak.Load())
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		h := newHarness(t, nil)
		var ss []*session.Session
		for i := range 5 {
			s := h.c.Connect(context.Background(), host(i))
			if i%2 == 0 {
				_ = s.Events() // read some, never others
			}
			ss = append(ss, s)
		}
		for _, s := range ss {
			s.Wait(context.Background())
			s.Close(context.Background())
		}
		for i, s := range ss {
			if i%2 == 0 {
				collect(t, s)
			}
		}
		h.c.Close()
	}()
	waitGoroutines(t, before)
}

// waitGoroutines polls until no more goroutines run than before, and
// fails with every goroutine's stack after a deadline.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond)
	}
}

// No password reaches the log, the events or the results.
func TestNoSecretsInLogsOrEvents(t *testing.T) {
	const secret = "Zq8-very-secret-9x"
	var logbuf bytes.Buffer
	var mu sync.Mutex
	h := newHarness(t, func(h *harness) {
		h.auth.adminPW = secret
		h.cfg.Credentials, _ = adauth.Parse("admin", "wrong-"+secret)
		h.cfg.Prompt = func(context.Context, adauth.PromptRequest) (adauth.Credentials, error) {
			return adauth.Parse("admin", secret)
		}
		h.cfg.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logbuf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		h.ls[0].err = launchErr("scm", deploy.ErrLaunchUnsupported)
	})
	s := h.c.Connect(context.Background(), host(1))
	s.Wait(context.Background())
	s.Close(context.Background())
	var text strings.Builder
	for _, e := range collect(t, s) {
		fmt.Fprintf(&text, "%+v %v\n", e, e.Err)
		if e.Result != nil {
			fmt.Fprintf(&text, "%+v\n", *e.Result)
		}
	}
	fmt.Fprintf(&text, "%+v", s.Result())
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logbuf.String(), secret) || strings.Contains(text.String(), secret) {
		t.Fatal("a password appears in the log, an event or a result")
	}
	if !strings.Contains(logbuf.String(), "running") || s.Result().Account != "admin" {
		t.Fatalf("the test saw nothing: %q", logbuf.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestHostsLiveFilter(t *testing.T) {
	release := make(chan struct{})
	d := discovery.DiscovererFunc(func(ctx context.Context, out chan<- discovery.Host) error {
		for i := range 4 {
			if i == 2 {
				<-release
			}
			select {
			case out <- host(i):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	c, err := session.New(session.Config{Discoverers: []discovery.Discoverer{d}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := c.Hosts(ctx, discovery.MustParseFilter("PC00"))
	shown := map[string]bool{}
	e := <-v.Events()
	if e.Kind != discovery.Show || e.Host.Name != "PC00" {
		t.Fatalf("first event %+v", e)
	}
	shown[e.Host.Name] = true
	// Connect while discovery is still running (the discoverer waits).
	cs := c.Connect(ctx, e.Host)
	if st, _ := cs.State(); st == session.Running {
		t.Fatal("running without a deployer")
	}
	v.SetFilter(discovery.MustParseFilter("PC0*"))
	close(release)
	for e := range v.Events() {
		if e.Kind == discovery.Show {
			shown[e.Host.Name] = true
		}
		if e.Kind == discovery.Complete { // the view stays open for the filter
			break
		}
	}
	if len(shown) != 4 {
		t.Fatalf("shown %v", shown)
	}
	// That Connect ran its course: this Client has no Authenticator and
	// no Deployer, so it fails at once, with a configuration error.
	if r, _ := cs.Wait(context.Background()); r.State != session.Failed || !errors.Is(r.Err, session.ErrBadConfig) {
		t.Fatalf("%v %v", r.State, r.Err)
	}
}
