package session_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/session"
)

// variantDeployer is the fake deployer with applet variants: it records
// the architecture Deploy was called with.
type variantDeployer struct {
	*fakeDeployer
	v      deploy.Applets
	deploy atomic.Int32
	arch   atomic.Value // string: t.Arch at Deploy
}

func (d *variantDeployer) Variants() deploy.Applets { return d.v }

func (d *variantDeployer) Deploy(ctx context.Context, t *deploy.Target, progress func(done, total int64)) (string, error) {
	d.deploy.Add(1)
	d.arch.Store(t.Arch)
	if _, err := d.v.Choose(t.Arch); err != nil {
		return "", err
	}
	return d.fakeDeployer.Deploy(ctx, t, progress)
}

// archLauncher is a fake launcher that reads the architecture as WMI
// does (deploy.Preflighter).
type archLauncher struct {
	*fakeLauncher
	arch  string
	reads atomic.Int32
}

func (l *archLauncher) Preflight(context.Context, *deploy.Target) (*deploy.Preflight, error) {
	l.reads.Add(1)
	if l.arch == "" {
		return nil, errors.New("wmi: unreachable")
	}
	return &deploy.Preflight{Arch: l.arch}, nil
}

func variants(archs ...string) deploy.Applets {
	var out deploy.Applets
	for _, a := range archs {
		ap := deploy.AppletFromBytes("app.exe", "1", []byte("MZ "+a))
		ap.Arch = a
		out = append(out, ap)
	}
	return out
}

func TestAppletVariantBySession(t *testing.T) {
	for _, tc := range []struct {
		name       string
		registry   string // the preflight's Arch
		wmi        string // the WMI launcher's
		v          deploy.Applets
		wantArch   string // Result.Arch
		wantApplet string // Result.AppletArch; "" means the session fails before Deploy
		wmiReads   int32
	}{
		{name: "registry x86", registry: "x86", wmi: "64-bit", v: variants("amd64", "386"), wantArch: "x86", wantApplet: "386"},
		{name: "registry ARM64", registry: "ARM64", v: variants("amd64", "arm64", ""), wantArch: "ARM64", wantApplet: "arm64"},
		{name: "wmi when the registry is silent", wmi: "ARM 64-bit Processor", v: variants("amd64", "arm64"), wantArch: "ARM 64-bit Processor", wantApplet: "arm64", wmiReads: 1},
		{name: "wmi 32-bit", wmi: "32-bit", v: variants("amd64", "386"), wantArch: "32-bit", wantApplet: "386", wmiReads: 1},
		{name: "default only: no architecture asked", wmi: "64-bit", v: variants(""), wantApplet: "default"},
		{name: "x86 with amd64 only", registry: "x86", v: variants("amd64", "arm64"), wantArch: "x86"},
		{name: "unknown with arm64 only", v: variants("arm64"), wmiReads: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dep *variantDeployer
			var wl *archLauncher
			h := newHarness(t, func(h *harness) {
				h.pre.p = &deploy.Preflight{Product: "Windows", Arch: tc.registry}
				dep = &variantDeployer{fakeDeployer: h.dep, v: tc.v}
				h.cfg.Deployer = dep
				wl = &archLauncher{fakeLauncher: &fakeLauncher{name: "wmi", g: h.g, dep: h.dep}, arch: tc.wmi}
				h.ls = nil
				h.cfg.Launchers = []deploy.Launcher{wl}
			})
			s := h.c.Connect(context.Background(), host(1))
			evs := until(t, s, func(e session.Event) bool { return e.State != session.Connecting })
			last := evs[len(evs)-1]
			r := last.Result
			if r == nil || wl.reads.Load() != tc.wmiReads || r.Arch != tc.wantArch {
				t.Fatalf("result %+v, WMI reads %d (want %d)", r, wl.reads.Load(), tc.wmiReads)
			}
			if tc.wantApplet == "" {
				var ae *deploy.ArchError
				if last.State != session.Failed || last.Step != session.StepDeploy || !errors.Is(last.Err, deploy.ErrNoAppletForArch) || !errors.As(last.Err, &ae) ||
					last.Diagnosis.Code != diag.AppletArchUnsupported || dep.deploy.Load() != 0 || wl.calls.Load() != 0 || r.AppletArch != "" {
					t.Fatalf("want a failure before Deploy: %v %v (%v), deploys %d, launches %d", last.State, last.Err, last.Diagnosis, dep.deploy.Load(), wl.calls.Load())
				}
				if ae.Reported != tc.registry {
					t.Fatalf("arch error names %q", ae.Reported)
				}
				return
			}
			if last.State != session.Running || r.AppletArch != tc.wantApplet || dep.arch.Load() != tc.wantArch && !(tc.wantArch == "" && dep.arch.Load() == "") {
				t.Fatalf("%v %v, applet %q, Deploy saw %q", last.State, last.Err, r.AppletArch, dep.arch.Load())
			}
			_, _ = s.Close(context.Background())
			collect(t, s)
		})
	}
}

// TestBadExeFormatNamesVariant: when the launch still fails with error
// 193 (a damaged or mislabelled build), the diagnosis says which variant
// was copied to which architecture.
func TestBadExeFormatNamesVariant(t *testing.T) {
	var wl *archLauncher
	h := newHarness(t, func(h *harness) {
		h.pre.p = &deploy.Preflight{Arch: "ARM64"}
		h.cfg.Deployer = &variantDeployer{fakeDeployer: h.dep, v: variants("amd64", "")}
		wl = &archLauncher{fakeLauncher: &fakeLauncher{name: "scm", g: h.g, dep: h.dep, err: &deploy.LaunchError{Launcher: "scm", Step: "start service",
			Kind: deploy.ErrNotExecutable, Err: errors.New("193"), Diagnosis: diag.Diagnosis{Code: diag.AppletWrongArchitecture, Summary: "Not a program for this computer.", Fix: "Deploy the right build."}}}}
		h.ls = nil
		h.cfg.Launchers = []deploy.Launcher{wl}
	})
	s := h.c.Connect(context.Background(), host(1))
	evs := collect(t, s)
	last := evs[len(evs)-1]
	if last.State != session.Failed || last.Diagnosis.Code != diag.AppletWrongArchitecture ||
		!strings.Contains(last.Diagnosis.Summary, `The default applet was copied to a computer that reports its architecture as "ARM64".`) ||
		!strings.Contains(last.Diagnosis.Fix, "windows/ARCH=FILE") {
		t.Fatalf("%v: %+v", last.State, last.Diagnosis)
	}
}
