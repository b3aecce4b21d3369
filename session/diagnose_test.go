package session_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/remotereg"
	"github.com/lanconnect/lanconnect/session"
)

// The diagnoses the SCM and WMI launchers give for a target whose SCM
// cannot create services and whose port 135 is closed (issue 21 §12),
// with their fixes as remotereg and wmi write them.
func scmUnsupported() error {
	return &deploy.LaunchError{Launcher: "remotereg", Step: "create service", Kind: deploy.ErrLaunchUnsupported, Err: errors.New("fault"),
		Diagnosis: diag.Diagnosis{Code: diag.SCMNotSupported,
			Summary: `The server at \\10.0.0.5\pipe\svcctl does not implement create service (RPC status 0x1C010002).`,
			Fix:     "Another launch method is needed for this computer."}}
}

func wmiRefused() error {
	return &deploy.LaunchError{Launcher: "wmi", Step: "connect", Kind: deploy.ErrUnreachable, Err: errors.New("refused"),
		Diagnosis: diag.Diagnosis{Code: diag.WMIRPCRefused,
			Summary: "Port 135 on 10.0.0.5 refused the connection: the RPC endpoint mapper is not reachable.",
			Fix:     `Allow TCP 135 and the dynamic RPC range (49152-65535) from the console (Windows Firewall rules "Windows Management Instrumentation (DCOM-In)" and "(WMI-In)"), or use the SCM launcher.`}}
}

func scmNotServiceAware() error {
	return &deploy.LaunchError{Launcher: "remotereg", Step: "start service", Kind: deploy.ErrNotServiceAware, Err: errors.New("1053"),
		Diagnosis: diag.Diagnosis{Code: diag.AppletNotServiceAware,
			Summary: "The applet is not a service.",
			Fix:     "Use a service-aware applet (on Windows, built with golang.org/x/sys/windows/svc), or launch it with WMI."}}
}

func TestFallbackDiagnosisTakesAccountOfAttempts(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.ls[0].err = scmUnsupported()
		h.ls[1].err = wmiRefused()
	})
	s := h.c.Connect(context.Background(), host(1))
	r, _ := s.Wait(context.Background())
	if r.State != session.Failed || len(r.Attempts) != 2 {
		t.Fatalf("%v attempts %+v", r.State, r.Attempts)
	}
	// The SCM attempt came first, with WMI still to try: its advice to
	// use another method stands.
	if got := r.Attempts[0].Diagnosis.Fix; got != "Another launch method is needed for this computer." {
		t.Errorf("SCM attempt fix %q", got)
	}
	// The WMI attempt came after SCM failed: no "use the SCM launcher".
	wantWMIFix := `Allow TCP 135 and the dynamic RPC range (49152-65535) from the console (Windows Firewall rules "Windows Management Instrumentation (DCOM-In)" and "(WMI-In)").`
	if got := r.Attempts[1].Diagnosis.Fix; got != wantWMIFix {
		t.Errorf("WMI attempt fix\n got %q\nwant %q", got, wantWMIFix)
	}
	want := diag.Diagnosis{Code: diag.WMIRPCRefused,
		Summary: `Every launch method failed (SCM, then WMI). SCM: The server at \\10.0.0.5\pipe\svcctl does not implement create service (RPC status 0x1C010002). ` +
			"WMI: Port 135 on 10.0.0.5 refused the connection: the RPC endpoint mapper is not reachable.",
		Fix: "Remove the cause of one of the failures. WMI: " + wantWMIFix}
	if r.Diagnosis != want {
		t.Errorf("final diagnosis\n got %+v\nwant %+v", r.Diagnosis, want)
	}
}

func TestFallbackDiagnosisWMIFirst(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.ls[0].name, h.ls[1].name = "wmi", "scm"
		h.ls[0].err = wmiRefused()
		h.ls[1].err = scmNotServiceAware()
	})
	s := h.c.Connect(context.Background(), host(1))
	r, _ := s.Wait(context.Background())
	if r.State != session.Failed || len(r.Attempts) != 2 {
		t.Fatalf("%v attempts %+v", r.State, r.Attempts)
	}
	// WMI first: the SCM launcher was not tried yet, so it is advice.
	if got := r.Attempts[0].Diagnosis.Fix; !strings.HasSuffix(got, "or use the SCM launcher.") {
		t.Errorf("WMI attempt fix %q", got)
	}
	// SCM after WMI: "or launch it with WMI" is gone.
	if got := r.Attempts[1].Diagnosis.Fix; got != "Use a service-aware applet (on Windows, built with golang.org/x/sys/windows/svc)." {
		t.Errorf("SCM attempt fix %q", got)
	}
	d := r.Diagnosis
	if d.Code != diag.AppletNotServiceAware || !strings.HasPrefix(d.Summary, "Every launch method failed (WMI, then SCM).") {
		t.Errorf("final diagnosis %+v", d)
	}
	for _, bad := range []string{"SCM launcher", "with WMI", "another launch method"} {
		if strings.Contains(d.Fix, bad) {
			t.Errorf("final fix %q contains %q", d.Fix, bad)
		}
	}
	if !strings.Contains(d.Fix, "WMI: Allow TCP 135") || !strings.Contains(d.Fix, "SCM: Use a service-aware applet") {
		t.Errorf("final fix %q does not give each attempt's fix", d.Fix)
	}
}

// Both launchers fail without a usable fix: the fix says so rather than
// sending the technician to another method.
func TestFallbackDiagnosisNoFixLeft(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.ls[0].err = scmUnsupported()
		h.ls[1].err = &deploy.LaunchError{Launcher: "wmi", Step: "activate", Kind: deploy.ErrLaunchUnsupported, Err: errors.New("no"),
			Diagnosis: diag.Diagnosis{Code: diag.WMINotSupported, Summary: "No WMI.", Fix: "Another launch method is needed for this computer."}}
	})
	s := h.c.Connect(context.Background(), host(1))
	r, _ := s.Wait(context.Background())
	want := "No launch method works on this computer as it is set up: remove the cause of one of the failures above."
	if r.Diagnosis.Fix != want || r.Attempts[1].Diagnosis.Fix != "" {
		t.Errorf("final fix %q, WMI attempt fix %q", r.Diagnosis.Fix, r.Attempts[1].Diagnosis.Fix)
	}
}

// A preflight that fails with a Win32 error reads as the error's name
// and meaning, not as "win32 error 8".
func TestPreflightNoteNamesWin32Error(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.pre.err = fmt.Errorf(`remotereg: preflight: open HKLM\SYSTEM: %w`, remotereg.Win32Error(8))
	})
	s := h.c.Connect(context.Background(), host(1))
	r, _ := s.Wait(context.Background())
	defer s.Close(context.Background())
	var note diag.Diagnosis
	for _, n := range r.Notes {
		if n.Code == diag.PreflightFailed {
			note = n
		}
	}
	want := `The target's settings could not be read through Remote Registry: remotereg: preflight: open HKLM\SYSTEM: ` +
		"ERROR_NOT_ENOUGH_MEMORY (8): the computer ran out of memory (or of a server resource such as RPC buffers) for this call"
	if note.Summary != want || strings.Contains(note.String(), "win32 error") {
		t.Errorf("note %q\nwant %q", note.Summary, want)
	}
}
