package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/session"
)

func TestCheckUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-check", "-keep", "192.0.2.1"},
		{"-check", "-cleanup", "j.json"},
		{"-check", "-applet", "a.exe", "192.0.2.1"},
		{"-check", "-param", "a=b", "192.0.2.1"},
		{"-check", "-journal", "/tmp", "192.0.2.1"},
	} {
		e, out, errb := testEnv("")
		if code := run(context.Background(), args, e); code != exitUsage || !strings.Contains(errb.String(), "-check changes nothing") || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

// checkReport is a report as a check of a host whose 445 and 139 are
// closed makes it, with text the host chose in it.
func checkReport() *session.CheckReport {
	d := diag.Diagnosis{Code: diag.FirewallRefused, Summary: "closed\x1b[2J", Fix: "open it"}
	fail := session.CheckItem{Status: session.CheckFail, Value: "refused", Diagnosis: d}
	unk := session.CheckItem{Status: session.CheckUnknown, Value: "needs an administrator logon"}
	return &session.CheckReport{Name: "PC1\r\nforged", Addr: "192.0.2.1", TCP135: session.CheckItem{Status: session.CheckWarn, Value: "refused"},
		TCP139: fail, TCP445: fail, SMB: session.CheckItem{Status: session.CheckFail, Value: "unreachable", Diagnosis: d},
		Credentials: unk, Admin: unk, SharingModel: unk, NTLMLevel: unk, UAC: unk, RemoteRegistry: unk, WMI: unk,
		Launch: session.CheckItem{Status: session.CheckFail, Value: "none", Diagnosis: d}, Diagnosis: d}
}

func TestCheckJSON(t *testing.T) {
	var b bytes.Buffer
	p := &checkPrinter{w: &b, json: true}
	p.report(checkReport())
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("%q: %v", b.String(), err)
	}
	for _, f := range []string{"host", "state", "step", "time", "method", "error", "diagnosis", "event", "ready", "code", "addr",
		"tcp135", "tcp139", "tcp445", "smb", "credentials", "admin", "sharing_model", "ntlm_level", "uac", "remote_registry", "wmi", "launch"} {
		if _, ok := m[f]; !ok {
			t.Errorf("no %q in %s", f, b.String())
		}
	}
	if m["event"] != "check" || m["ready"] != false || m["code"] != string(diag.FirewallRefused) {
		t.Errorf("%s", b.String())
	}
	tcp := m["tcp445"].(map[string]any)
	if tcp["status"] != "fail" || tcp["value"] != "refused" || tcp["code"] != string(diag.FirewallRefused) || !strings.Contains(tcp["diagnosis"].(string), "Fix: open it") {
		t.Errorf("tcp445 %v", tcp)
	}
}

func TestCheckText(t *testing.T) {
	var b bytes.Buffer
	p := &checkPrinter{w: &b}
	p.report(checkReport())
	p.summary(0, 1)
	out := b.String()
	t.Logf("\n%s", out)
	if strings.ContainsAny(out, "\x1b\r") || strings.Contains(out, "\nforged") {
		t.Errorf("control characters from the host reach the terminal: %q", out)
	}
	if !strings.Contains(out, "): NOT READY\n") || strings.Count(out, "firewall-445-refused: ") != 1 {
		t.Errorf("want one NOT READY block with the diagnosis once:\n%s", out)
	}
	if !strings.HasSuffix(out, "0 of 1 hosts ready to connect (nothing was changed on them)\n") {
		t.Errorf("summary: %q", out)
	}
}
