package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// checkingLauncher is a fakeLauncher that also implements deploy.Checker.
type checkingLauncher struct {
	*fakeLauncher
	probe  *deploy.Probe
	checks atomic.Int32
}

func (l *checkingLauncher) Check(ctx context.Context, t *deploy.Target) (*deploy.Probe, error) {
	l.checks.Add(1)
	if t.Grant == nil || t.Journal != nil {
		return nil, &deploy.LaunchError{Launcher: l.name, Step: "check", Kind: deploy.ErrBadSpec}
	}
	return l.probe, l.err
}

// readOnlyAuth records whether each call carried adauth.WithReadOnly.
type readOnlyAuth struct {
	adauth.Authenticator
	readOnly, calls atomic.Int32
}

func (a *readOnlyAuth) Authenticate(ctx context.Context, host string, cr adauth.Credentials) (*adauth.Grant, error) {
	a.calls.Add(1)
	if adauth.ReadOnly(ctx) {
		a.readOnly.Add(1)
	}
	return a.Authenticator.Authenticate(ctx, host, cr)
}

// countingPreflight must not be called by a check (the real one may
// start Remote Registry).
type countingPreflight struct{ calls atomic.Int32 }

func (p *countingPreflight) Preflight(context.Context, *deploy.Target) (*deploy.Preflight, error) {
	p.calls.Add(1)
	return &deploy.Preflight{}, nil
}

// checkHarness is a harness whose launchers scm and wmi implement
// deploy.Checker with the given errors and probes.
func checkHarness(t *testing.T, user string, scmErr, wmiErr error, scmProbe, wmiProbe *deploy.Probe) (*harness, []*checkingLauncher, *readOnlyAuth, *countingPreflight) {
	t.Helper()
	var ls []*checkingLauncher
	var ra *readOnlyAuth
	pre := &countingPreflight{}
	h := newHarness(t, func(h *harness) {
		ls = []*checkingLauncher{
			{fakeLauncher: &fakeLauncher{name: "scm", g: h.g, dep: h.dep, err: scmErr}, probe: scmProbe},
			{fakeLauncher: &fakeLauncher{name: "wmi", g: h.g, dep: h.dep, err: wmiErr}, probe: wmiProbe},
		}
		h.ls = nil
		for _, l := range ls {
			h.cfg.Launchers = append(h.cfg.Launchers, l)
		}
		ra = &readOnlyAuth{Authenticator: h.auth}
		h.cfg.Authenticator = ra
		h.cfg.Preflight = pre
		cr, _ := adauth.Parse(user, "good")
		h.cfg.Credentials = cr
	})
	return h, ls, ra, pre
}

// connectDiagnosis runs a real Connect with h's Client and returns the
// diagnosis of its Failed event.
func connectDiagnosis(t *testing.T, h *harness) diag.Diagnosis {
	t.Helper()
	s := h.c.Connect(context.Background(), host(0))
	r, _ := s.Wait(context.Background())
	if r.State != session.Failed {
		t.Fatalf("connect: %s", r.State)
	}
	return r.Diagnosis
}

func TestCheckReadyChangesNothing(t *testing.T) {
	h, ls, ra, pre := checkHarness(t, "admin", nil, nil,
		&deploy.Probe{RemoteRegistry: deploy.ServiceStopped, Settings: nil}, &deploy.Probe{Port: 49999})
	r := h.c.Check(context.Background(), host(0))
	if !r.Ready || r.Launch.Status != session.CheckOK || r.Launch.Value != "scm" || !r.Diagnosis.IsZero() {
		t.Fatalf("report %+v", r)
	}
	if ra.calls.Load() != 1 || ra.readOnly.Load() != 1 {
		t.Errorf("authenticate calls %d, read-only %d", ra.calls.Load(), ra.readOnly.Load())
	}
	if pre.calls.Load() != 0 {
		t.Error("the check ran the preflight")
	}
	for _, l := range ls {
		if l.checks.Load() != 1 || l.calls.Load() != 0 {
			t.Errorf("%s: %d checks, %d launches", l.name, l.checks.Load(), l.calls.Load())
		}
	}
	if r.RemoteRegistry.Value != deploy.ServiceStopped || r.NTLMLevel.Status != session.CheckUnknown || r.NTLMLevel.Value != "unknown, Remote Registry stopped" {
		t.Errorf("remote registry %+v, ntlm level %+v", r.RemoteRegistry, r.NTLMLevel)
	}
	if r.WMI.Status != session.CheckOK || r.WMIPort != 49999 {
		t.Errorf("wmi %+v port %d", r.WMI, r.WMIPort)
	}
	if r.Credentials.Status != session.CheckOK || r.Admin.Status != session.CheckOK || r.SharingModel.Value != "classic" {
		t.Errorf("credentials %+v admin %+v sharing %+v", r.Credentials, r.Admin, r.SharingModel)
	}
	// The fake host is a loopback address where nothing listens.
	if r.TCP445.Value != "refused" || r.TCP445.Status != session.CheckWarn {
		t.Errorf("tcp445 %+v", r.TCP445)
	}
	if len(r.Items()) != 12 {
		t.Errorf("%d items", len(r.Items()))
	}
}

func TestCheckRegistryValues(t *testing.T) {
	lm, fg, latfp := uint32(2), uint32(0), uint32(1)
	h, _, _, _ := checkHarness(t, "admin", nil, nil,
		&deploy.Probe{RemoteRegistry: deploy.ServiceRunning, Settings: &deploy.Preflight{LmCompatibilityLevel: &lm, ForceGuest: &fg, LocalAccountTokenFilterPolicy: &latfp}}, &deploy.Probe{})
	r := h.c.Check(context.Background(), host(0))
	if r.NTLMLevel.Status != session.CheckWarn || r.NTLMLevel.Value != "2" || r.NTLMLevel.Diagnosis.Code != diag.NTLMLevelLow {
		t.Errorf("ntlm level %+v", r.NTLMLevel)
	}
	if r.UAC.Value != "LocalAccountTokenFilterPolicy=1" || r.SharingModel.Value != "classic" || !r.Ready {
		t.Errorf("uac %+v sharing %+v ready %v", r.UAC, r.SharingModel, r.Ready)
	}
}

// TestCheckLaunchLikeConnect: the launch method and its diagnosis follow
// Connect's fallback rule, and a check that is not ready says what the
// Connect's Failed event says.
func TestCheckLaunchLikeConnect(t *testing.T) {
	for _, c := range []struct {
		name           string
		scmErr, wmiErr error
		want           string
	}{
		{"scm unsupported, wmi works", launchErr("scm", deploy.ErrLaunchUnsupported), nil, "wmi"},
		{"scm access denied stops", launchErr("scm", deploy.ErrAccessDenied), nil, "none"},
		{"both unreachable", launchErr("scm", deploy.ErrUnreachable), launchErr("wmi", deploy.ErrUnreachable), "none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, _, _, _ := checkHarness(t, "admin", c.scmErr, c.wmiErr, &deploy.Probe{}, &deploy.Probe{})
			r := h.c.Check(context.Background(), host(0))
			if r.Launch.Value != c.want || r.Ready != (c.want != "none") {
				t.Fatalf("launch %+v ready %v", r.Launch, r.Ready)
			}
			if c.wmiErr != nil && r.WMI.Status != session.CheckFail {
				t.Errorf("wmi %+v", r.WMI)
			}
			if r.Ready {
				return
			}
			if d := connectDiagnosis(t, h); d != r.Diagnosis || d != r.Launch.Diagnosis {
				t.Errorf("connect: %+v\ncheck:   %+v", d, r.Diagnosis)
			}
		})
	}
}

// TestCheckLogonFailures: a failed logon fails the item it is about with
// the diagnosis a Connect gives.
func TestCheckLogonFailures(t *testing.T) {
	for _, c := range []struct {
		user string
		item func(*session.CheckReport) session.CheckItem
		code diag.Code
	}{
		{"user", func(r *session.CheckReport) session.CheckItem { return r.Admin }, diag.NotAdmin},
		{"guest", func(r *session.CheckReport) session.CheckItem { return r.SharingModel }, diag.GuestOnly},
		{"nobody", func(r *session.CheckReport) session.CheckItem { return r.Credentials }, diag.LogonFailure},
	} {
		t.Run(c.user, func(t *testing.T) {
			h, ls, _, _ := checkHarness(t, c.user, nil, nil, &deploy.Probe{}, &deploy.Probe{})
			r := h.c.Check(context.Background(), host(0))
			it := c.item(r)
			if r.Ready || it.Status != session.CheckFail || it.Diagnosis.Code != c.code || r.Diagnosis != it.Diagnosis {
				t.Fatalf("item %+v, report diagnosis %+v", it, r.Diagnosis)
			}
			for _, l := range ls {
				if l.checks.Load() != 0 {
					t.Errorf("%s checked without a logon", l.name)
				}
			}
			// A fresh Client: this one's lockout guard keeps the refused
			// credentials from any further logon, as it should.
			h2, _, _, _ := checkHarness(t, c.user, nil, nil, &deploy.Probe{}, &deploy.Probe{})
			if d := connectDiagnosis(t, h2); d != r.Diagnosis {
				t.Errorf("connect: %+v\ncheck:   %+v", d, r.Diagnosis)
			}
		})
	}
}

// TestCheckNoAuthenticator: a Client without an Authenticator reports
// every item unknown and says why.
func TestCheckNoAuthenticator(t *testing.T) {
	c, err := session.New(session.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := c.Check(context.Background(), host(0))
	if r.Ready || r.Launch.Status != session.CheckFail || r.Diagnosis.IsZero() || r.Credentials.Status != session.CheckUnknown {
		t.Fatalf("report %+v", r)
	}
}

// TestLaunchTimeoutKeepsDiagnosis: a launcher whose own step ran out of
// time (a filtered dynamic port) is marked as a timeout, but its own
// diagnosis reaches the technician, in a Connect and in a Check alike.
func TestLaunchTimeoutKeepsDiagnosis(t *testing.T) {
	filtered := &deploy.LaunchError{Launcher: "wmi", Step: "connect dynamic", Kind: deploy.ErrUnreachable,
		Err:       fmt.Errorf("no answer: %w", context.DeadlineExceeded),
		Diagnosis: diag.Diagnosis{Code: diag.WMIDynamicPortFiltered, Summary: "the dynamic port is filtered", Fix: "open it"}}
	h, _, _, _ := checkHarness(t, "admin", launchErr("scm", deploy.ErrLaunchUnsupported), filtered, &deploy.Probe{}, &deploy.Probe{})
	r := h.c.Check(context.Background(), host(0))
	if r.WMI.Diagnosis.Code != diag.WMIDynamicPortFiltered || r.Launch.Diagnosis.Code != diag.WMIDynamicPortFiltered {
		t.Errorf("check: wmi %+v launch %+v", r.WMI, r.Launch)
	}
	s := h.c.Connect(context.Background(), host(0))
	res, _ := s.Wait(context.Background())
	if len(res.Attempts) != 2 || res.Attempts[1].Diagnosis.Code != diag.WMIDynamicPortFiltered || !errors.Is(res.Attempts[1].Err, deploy.ErrTimeout) {
		t.Fatalf("connect attempts %+v", res.Attempts)
	}
	if res.Diagnosis != r.Diagnosis {
		t.Errorf("connect: %+v\ncheck:   %+v", res.Diagnosis, r.Diagnosis)
	}
}

// TestCheckAfterClose: a closed Client checks nothing.
func TestCheckAfterClose(t *testing.T) {
	h, ls, ra, _ := checkHarness(t, "admin", nil, nil, &deploy.Probe{}, &deploy.Probe{})
	h.c.Close()
	r := h.c.Check(context.Background(), host(0))
	if r.Ready || r.Diagnosis.Code != diag.ClientClosed || ra.calls.Load() != 0 || ls[0].checks.Load() != 0 {
		t.Fatalf("report %+v, %d logons", r, ra.calls.Load())
	}
}

// TestCheckNoAddress: a host with no address or name is not probed.
func TestCheckNoAddress(t *testing.T) {
	h, _, ra, _ := checkHarness(t, "admin", nil, nil, &deploy.Probe{}, &deploy.Probe{})
	r := h.c.Check(context.Background(), discovery.Host{})
	if r.Ready || r.Diagnosis.Code != diag.NoAddress || ra.calls.Load() != 0 || r.TCP445.Status != session.CheckUnknown {
		t.Fatalf("report %+v", r)
	}
}
