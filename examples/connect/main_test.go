package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/session"
)

func testEnv(stdin string) (env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}, &out, &errb
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no HOST"},
		{[]string{"-method", "psexec", "192.0.2.1"}, "-method must be"},
		{[]string{"-concurrency", "0", "192.0.2.1"}, "-concurrency must be positive"},
		{[]string{"-nosuchflag"}, "not defined"},
		{[]string{"-password-stdin", "-user", "admin", "192.0.2.1"}, "no password on standard input"},
		{[]string{"-user", `a\b\c`, "192.0.2.1"}, "-user"},
		{[]string{"-applet", "linux/amd64=a", "192.0.2.1"}, "windows targets only"},
		{[]string{"-applet", "windows/ia64=a", "192.0.2.1"}, `architecture "ia64"`},
		{[]string{"-applet", "a", "-applet", "b", "192.0.2.1"}, "more than one default"},
		{[]string{"-applet", "windows/amd64=a", "-applet", "windows/amd64=b", "192.0.2.1"}, "more than one applet for windows/amd64"},
		{[]string{"-applet", "windows/386=", "192.0.2.1"}, "no FILE"},
		{[]string{"-applet", "windows/386=/nonexistent/x86.exe", "192.0.2.1"}, "-applet"},
		{[]string{"-laps", "-user", `CORP\helpdesk`, "PC1"}, "-laps needs the directory"},
		{[]string{"-laps", "-ldap", "ldaps://dc", "PC1"}, "-laps needs -user"},
		{[]string{"-ldap", "ldaps://dc", "PC1"}, "need -laps"},
		{[]string{"-laps-account", "Administrator", "PC1"}, "need -laps"},
		{[]string{"-laps", "-ldap", "ldaps://dc", "-user", `CORP\h`, "-laps-key-server", "dc:x", "PC1"}, "-laps-key-server"},
		{[]string{"-auth", "negotiate", "192.0.2.1"}, "-auth must be auto, kerberos or ntlm"},
		{[]string{"-auth", "ntlm", "-kdc", "192.0.2.2", "192.0.2.1"}, "not with -auth ntlm"},
		{[]string{"-keytab", "/nonexistent.keytab", "192.0.2.1"}, "-keytab needs -user"},
		{[]string{"-ccache", "/nonexistent.ccache", "-keytab", "/k", "-user", "a", "192.0.2.1"}, "not both"},
		{[]string{"-ccache", "/nonexistent.ccache", "192.0.2.1"}, "ccache /nonexistent.ccache"},
	} {
		e, _, errb := testEnv("")
		if code := run(context.Background(), tc.args, e); code != exitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

func TestMethodWMIWithoutLauncher(t *testing.T) {
	saved := newWMI
	newWMI = nil // a build without the WMI launcher
	defer func() { newWMI = saved }()
	e, _, errb := testEnv("")
	if code := run(context.Background(), []string{"-method", "wmi", "192.0.2.1"}, e); code != exitUsage || !strings.Contains(errb.String(), "not available in this build") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestHelp(t *testing.T) {
	e, _, errb := testEnv("")
	if code := run(context.Background(), []string{"-h"}, e); code != exitOK || !strings.Contains(errb.String(), "-password-stdin") {
		t.Fatalf("exit %d, %q", code, errb.String())
	}
}

// The NDJSON contract: the seven fields are always present, the
// diagnosis is one string "Summary Fix: ...", and no secret leaks.
func TestJSONEvent(t *testing.T) {
	ev := session.Event{Kind: session.EventState, Name: "PC1", State: session.Failed, Step: session.StepLaunch,
		Time: time.Date(2026, 11, 26, 12, 0, 0, 5, time.UTC), Method: "scm", Err: errors.New("access denied"),
		Diagnosis: diag.Diagnosis{Code: "x", Summary: "It failed.", Fix: "Do this."},
		Result:    &session.Result{Attempts: []session.Attempt{{Launcher: "scm", Err: errors.New("denied")}}, Cleanup: &session.Cleanup{Undone: []string{"file"}}}}
	var out bytes.Buffer
	newPrinter(&out, true, false).event(ev)
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"host": "PC1", "state": "Failed", "step": "launch", "time": "2026-11-26T12:00:00.000000005Z", "method": "scm",
		"error": "access denied", "diagnosis": "It failed. Fix: Do this."}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, ok := m["auth"]; ok {
		t.Errorf("auth before authentication: %s", out.String())
	}
	// Running says how the account logged on.
	out.Reset()
	newPrinter(&out, true, false).event(session.Event{Kind: session.EventState, Name: "PC1", State: session.Running, Step: session.StepCheckin,
		Result: &session.Result{Account: `LAB\admin`, Auth: "kerberos"}})
	m = nil
	json.Unmarshal(out.Bytes(), &m)
	if m["auth"] != "kerberos" || m["account"] != `LAB\admin` {
		t.Errorf("Running: %s", out.String())
	}
	// A progress event keeps the seven fields, empty where unknown.
	out.Reset()
	newPrinter(&out, true, false).event(session.Event{Kind: session.EventProgress, Name: "PC1", State: session.Connecting, Step: session.StepDeploy, Done: 5, Total: 10})
	m = nil
	json.Unmarshal(out.Bytes(), &m)
	for _, k := range []string{"host", "state", "step", "time", "method", "error", "diagnosis"} {
		if _, ok := m[k]; !ok {
			t.Errorf("progress event lacks %q: %s", k, out.String())
		}
	}
	if m["bytes"] != 5.0 || m["total"] != 10.0 || m["event"] != "progress" {
		t.Errorf("progress: %s", out.String())
	}
}

func TestTextProgressBar(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(&out, false, false)
	for i := int64(0); i <= 100; i++ {
		p.event(session.Event{Kind: session.EventProgress, Session: "s", Name: "PC1", Done: i, Total: 100})
	}
	if n := strings.Count(out.String(), "copy ["); n != 5 {
		t.Fatalf("%d bar lines, want one per quarter:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "[##############################] 100%") {
		t.Fatalf("no full bar:\n%s", out.String())
	}
}

func TestTextFailed(t *testing.T) {
	var out bytes.Buffer
	ev := session.Event{Kind: session.EventState, Name: "PC1", State: session.Failed, Step: session.StepLaunch, Time: time.Now(),
		Err: errors.New("every launcher failed"), Diagnosis: diag.Diagnosis{Summary: "It failed.", Fix: "Do this."},
		Result: &session.Result{Attempts: []session.Attempt{{Launcher: "scm", Err: errors.New("not supported")}, {Launcher: "wmi", Err: errors.New("port 135 refused")}},
			Cleanup: &session.Cleanup{Undone: []string{"file"}, Left: []session.Leftover{{What: "dir", Err: errors.New("not empty")}}}}}
	newPrinter(&out, false, false).event(ev)
	for _, want := range []string{"Failed", "launch", "error: every launcher failed", "diagnosis: It failed. Fix: Do this.",
		"tried scm: not supported", "tried wmi: port 135 refused", "LEFT ON TARGET: dir (not empty)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
}

// TestHostileTextOnTheTerminal: a host name, an error and a diagnosis that
// carry ANSI escapes and line breaks are printed escaped on one line each
// in text mode, and left to JSON's escaping in NDJSON.
func TestHostileTextOnTheTerminal(t *testing.T) {
	evil := "PC1\x1b[2K\r12:00:00.000  PC1 Running\nX"
	ev := session.Event{Kind: session.EventState, Name: evil, State: session.Failed, Step: session.StepAuthenticate, Time: time.Now(),
		Err: errors.New("logon to " + evil + " failed"), Diagnosis: diag.Diagnosis{Summary: evil + " refused."},
		Result: &session.Result{Attempts: []session.Attempt{{Launcher: "scm", Err: errors.New(evil)}}}}
	var out bytes.Buffer
	p := newPrinter(&out, false, false)
	p.event(ev)
	p.event(session.Event{Kind: session.EventAttempt, Name: evil, Method: "wmi", Err: errors.New(evil), Time: time.Now()})
	p.event(session.Event{Kind: session.EventProgress, Session: "s", Name: evil, Done: 1, Total: 1, Time: time.Now()})
	for _, r := range out.String() {
		if r < 0x20 && r != '\n' || r == 0x7f {
			t.Fatalf("control character %q reached the terminal:\n%q", r, out.String())
		}
	}
	if strings.Contains(out.String(), "\nX") || !strings.Contains(out.String(), `PC1\x1b[2K\x0d12:00:00.000  PC1 Running\x0aX`) {
		t.Fatalf("text output:\n%s", out.String())
	}
	var js bytes.Buffer
	newPrinter(&js, true, false).event(ev)
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back["host"] != evil {
		t.Fatalf("NDJSON: %v %q", err, js.String())
	}
}

func TestAppletFlag(t *testing.T) {
	var a appletFlag
	for _, v := range []string{"windows/arm64=a64.exe", "windows/amd64=dir/a=1.exe", `C:\apps\x=y.exe`, "windows/386=/opt/x86.exe"} {
		if err := a.Set(v); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
	}
	want := appletFlag{{"arm64", "a64.exe"}, {"amd64", "dir/a=1.exe"}, {"", `C:\apps\x=y.exe`}, {"386", "/opt/x86.exe"}}
	if len(a) != len(want) {
		t.Fatalf("%+v", a)
	}
	for i := range want {
		if a[i] != want[i] {
			t.Fatalf("%d: %+v, want %+v", i, a[i], want[i])
		}
	}
}

// credential_source is written on Running only.
func TestJSONCredentialSource(t *testing.T) {
	r := &session.Result{Account: `.\admin`, CredentialSource: "laps-windows"}
	for state, want := range map[session.State]string{session.Running: "laps-windows", session.Closed: ""} {
		j := toJSON(session.Event{Kind: session.EventState, Name: "PC1", State: state, Result: r})
		b, _ := json.Marshal(j)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if got, _ := m["credential_source"].(string); got != want {
			t.Fatalf("%s: credential_source %q, want %q: %s", state, got, want, b)
		}
	}
}
