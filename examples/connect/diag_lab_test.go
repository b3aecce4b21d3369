package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestLabWhatTheTechnicianReads connects to a target whose port 135 is
// closed (no winemu: nothing listens there) and whose SCM cannot create
// services (Samba's own svcctl), as in issue 21 §12: the SCM attempt
// fails, the WMI attempt fails, and the texts connect prints must not
// repeat their prefixes nor send the technician back to the method that
// just failed.
func TestLabWhatTheTechnicianReads(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tgt := lab.Targets[0]
	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	console := net.JoinHostPort(lab.HostAddr.String(), "0")
	r := runConnect(ctx, t, tgt.Admin.Password, "-console", console, "-applet", applet, "-user", tgt.Admin.User, tgt.Addr.String())
	host := tgt.Addr.String()
	for _, e := range r.of(host) {
		t.Logf("%s %s/%s method=%s code=%s\n  error: %s\n  diagnosis: %s", e.Event, e.State, e.Step, e.Method, e.Code, e.Error, e.Diagnosis)
	}
	t.Logf("stderr:\n%s", r.stderr)
	last := r.last(host)
	if r.code != 1 || last.State != "Failed" || last.Step != "launch" {
		t.Fatalf("exit %d last %+v", r.code, last)
	}
	var attempts []event
	for _, e := range r.of(host) {
		if e.Event == "attempt" {
			attempts = append(attempts, e)
		}
	}
	if len(attempts) != 2 || attempts[0].Method != "scm" || attempts[1].Method != "wmi" {
		t.Fatalf("attempts %+v", attempts)
	}
	// NDJSON's error carries the raw chain (go-msrpc's own texts).
	if !strings.Contains(attempts[1].Error, "custom dialer") {
		t.Errorf("NDJSON error is not the raw chain: %q", attempts[1].Error)
	}
	for _, e := range append(attempts, last) {
		if strings.Contains(e.Error, "win32 error") || strings.Contains(e.Diagnosis, "win32 error") {
			t.Errorf("an unnamed Win32 error reaches the technician: %q / %q", e.Error, e.Diagnosis)
		}
	}
	// Without -json and -v, connect prints the summarised chain: each
	// layer's context once, go-msrpc's chain cut to its root cause.
	bin := buildBin(t, "connect", "")
	cmd := exec.CommandContext(ctx, bin, "-console", console, "-applet", applet, "-user", tgt.Admin.User, tgt.Addr.String())
	cmd.Env = append(os.Environ(), "LANCONNECT_PASSWORD="+tgt.Admin.Password)
	out, _ := cmd.Output()
	t.Logf("connect:\n%s", out)
	var errLines []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if i := strings.Index(l, "launch via "); i >= 0 {
			errLines = append(errLines, l[i:])
		}
		if strings.HasPrefix(l, "error: ") || strings.HasPrefix(l, "tried ") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) < 5 {
		t.Fatalf("connect printed no error lines:\n%s", out)
	}
	for _, l := range errLines {
		for _, p := range []string{"wmi: ", "connect: ", "session: ", "deploy: "} {
			if n := strings.Count(l, p); n > 1 {
				t.Errorf("%q appears %d times in %q", p, n, l)
			}
		}
		if strings.Contains(l, "custom dialer") || strings.Contains(l, "could not bind the selected transport") {
			t.Errorf("go-msrpc's chain is not summarised: %q", l)
		}
	}
	if d := last.Diagnosis; strings.Contains(d, "use the SCM launcher") || strings.Contains(d, "use another launch method") {
		t.Errorf("the final fix sends the technician back to a method that failed: %q", d)
	}
	if d := last.Diagnosis; !strings.Contains(d, "SCM") || !strings.Contains(d, "WMI") {
		t.Errorf("the final diagnosis does not name both attempts: %q", d)
	}
}
