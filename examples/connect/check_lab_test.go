package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// checkItem is one item of a "check" NDJSON object.
type checkItem struct {
	Status    string `json:"status"`
	Value     string `json:"value"`
	Code      string `json:"code"`
	Diagnosis string `json:"diagnosis"`
	Dialect   string `json:"dialect"`
	Transport string `json:"transport"`
	Signed    *bool  `json:"signed"`
	Encrypted *bool  `json:"encrypted"`
	Port      int    `json:"port"`
}

// checkResult is one "check" NDJSON object.
type checkResult struct {
	Event          string    `json:"event"`
	Auth           string    `json:"auth"`
	Host           string    `json:"host"`
	Method         string    `json:"method"`
	Ready          bool      `json:"ready"`
	Code           string    `json:"code"`
	Diagnosis      string    `json:"diagnosis"`
	TCP135         checkItem `json:"tcp135"`
	TCP139         checkItem `json:"tcp139"`
	TCP445         checkItem `json:"tcp445"`
	SMB            checkItem `json:"smb"`
	Credentials    checkItem `json:"credentials"`
	Admin          checkItem `json:"admin"`
	SharingModel   checkItem `json:"sharing_model"`
	NTLMLevel      checkItem `json:"ntlm_level"`
	UAC            checkItem `json:"uac"`
	RemoteRegistry checkItem `json:"remote_registry"`
	WMI            checkItem `json:"wmi"`
	Launch         checkItem `json:"launch"`
}

// checkItems are the item fields every check object has.
var checkItems = []string{"tcp135", "tcp139", "tcp445", "smb", "credentials", "admin", "sharing_model",
	"ntlm_level", "uac", "remote_registry", "wmi", "launch"}

// checkHost runs connect -check -json on host as user and returns the
// exit code and the host's check object.
func checkHost(ctx context.Context, t *testing.T, user, password, host string, args ...string) (int, checkResult) {
	t.Helper()
	return checkHostIn(ctx, t, nil, user, password, host, args...)
}

// checkHostIn is checkHost inside the namespace ns (nil: this one).
func checkHostIn(ctx context.Context, t *testing.T, ns *testlab.Netns, user, password, host string, args ...string) (int, checkResult) {
	t.Helper()
	r := runConnectIn(ctx, t, ns, password, append(append([]string{"-check", "-user", user}, args...), host)...)
	evs := r.of(host)
	if len(r.events) != 1 || len(evs) != 1 || evs[0].Event != "check" {
		t.Fatalf("want one check object for %s, got %d objects (exit %d)\n%s", host, len(r.events), r.code, r.stderr)
	}
	b, _ := json.Marshal(evs[0].raw)
	t.Logf("check %s: exit %d\n%s", host, r.code, b)
	var c checkResult
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{"ready", "addr"}, checkItems...) {
		if _, ok := evs[0].raw[f]; !ok {
			t.Errorf("check object without %q", f)
		}
	}
	// ready, the exit code and the launch item agree.
	if c.Ready != (r.code == 0) || c.Ready != (c.Launch.Status == "ok") {
		t.Errorf("ready %v, exit %d, launch %+v", c.Ready, r.code, c.Launch)
	}
	if !c.Ready && (c.Code == "" || c.Diagnosis == "") {
		t.Errorf("not ready without a diagnosis")
	}
	return r.code, c
}

// wantItem fails unless it has the status and value (a prefix), and,
// when code is not empty, that diagnosis code with a summary.
func wantItem(t *testing.T, name string, it checkItem, status, value, code string) {
	t.Helper()
	if it.Status != status || !strings.HasPrefix(it.Value, value) || it.Code != code || (code != "") != (it.Diagnosis != "") {
		t.Errorf("%s = %+v, want %s %q code %q", name, it, status, value, code)
	}
}

// snapshot is a target's state for a before/after comparison.
type snapshot struct {
	tgt   *testlab.Target
	state string
}

func takeSnapshot(ctx context.Context, t *testing.T, tgt *testlab.Target) snapshot {
	t.Helper()
	s, err := tgt.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{tgt, s}
}

// unchanged fails when the target's shares or registry changed.
func (s snapshot) unchanged(ctx context.Context, t *testing.T) {
	t.Helper()
	after, err := s.tgt.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := testlab.Diff(s.state, after); d != "" {
		t.Fatalf("the check changed %s:\n%s", s.tgt.Name, d)
	}
}

// warmSvcctl makes Samba's RPC server start on tgt before the first
// snapshot: on its first start Samba's svcctl writes the entries of its
// built-in services into its registry, whoever asked. A read-only query
// through Samba's own client.
func warmSvcctl(ctx context.Context, t *testing.T, tgt *testlab.Target) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "net", "-s", "/dev/null", "rpc", "service", "status", "RemoteRegistry",
		"-S", tgt.Addr.String(), "-U", tgt.Admin.User, "-W", tgt.NetBIOSName)
	cmd.Env = append(os.Environ(), "PASSWD="+tgt.Admin.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("warm-up of svcctl on %s: %v\n%s", tgt.Name, err, out)
	}
}

// emuCalls returns the RPC calls an emulator logged ("rpc" lines).
func emuCalls(t *testing.T, e *emu) []string {
	t.Helper()
	b, err := os.ReadFile(e.proc.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "msg=rpc ") {
			calls = append(calls, l)
		}
	}
	return calls
}

// noWrites fails when an emulator served a call that changes something
// or starts a process: service creation, start, configuration, control
// or deletion, or any IWbemServices call (Win32_Process.Create, queries).
func noWrites(t *testing.T, calls []string) {
	t.Helper()
	for _, c := range calls {
		for _, bad := range []string{"op=RCreateService", "op=RStartService", "op=RChangeServiceConfig", "op=RControlService", "op=RDeleteService", "iface=IWbemServices", "op=ExecMethod"} {
			if strings.Contains(c, bad) {
				t.Errorf("the check called %s: %s", bad, c)
			}
		}
	}
}

// connectCode runs a real connect to host and returns its final event,
// to compare its diagnosis with the check's.
func connectFailure(ctx context.Context, t *testing.T, console, user, password, host string, args ...string) event {
	t.Helper()
	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	r := runConnect(ctx, t, password, append(append([]string{"-console", console, "-applet", applet, "-checkin-timeout", "20s", "-user", user}, args...), host)...)
	last := r.last(host)
	if r.code != 1 || last.State != "Failed" {
		t.Fatalf("connect %s: exit %d, last %+v", host, r.code, last)
	}
	return last
}

// TestLabCheck runs connect -check on the lab's variants (issue 19 §3):
// each item matches the variant, ready and the exit code are right, every
// failing item carries the diagnosis a connect gives (compared with a real
// connect where it fails), and afterwards every target's shares and
// registry are byte for byte as before and the emulators served no call
// that changes anything.
func TestLabCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{
		{}, {Variant: testlab.GuestOnly}, {Variant: testlab.NTLMDisabled}, {Variant: testlab.SMB139Only}, {NoSMB: true}, {},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	std, guest, noNTLM, only139, noSMB, wmiFault := lab.Targets[0], lab.Targets[1], lab.Targets[2], lab.Targets[3], lab.Targets[4], lab.Targets[5]
	stdEmu := startWMIEmu(ctx, t, std, "")
	faultEmu := startWMIEmu(ctx, t, wmiFault, "", "-fault", "filter-dynamic")
	console := net.JoinHostPort(lab.HostAddr.String(), "0")
	// The values a check reads when Remote Registry runs, seeded into the
	// standard target's registry (Samba has no Control\Lsa of its own).
	for _, args := range [][]string{
		{"registry", "createkey", `HKLM\SYSTEM\CurrentControlSet\Control\Lsa`},
		{"registry", "setvalue", `HKLM\SYSTEM\CurrentControlSet\Control\Lsa`, "LmCompatibilityLevel", "dword", "2"},
		{"registry", "setvalue", `HKLM\SYSTEM\CurrentControlSet\Control\Lsa`, "forceguest", "dword", "0"},
		{"registry", "createkey", `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System`},
		{"registry", "setvalue", `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System`, "LocalAccountTokenFilterPolicy", "dword", "1"},
	} {
		if out, err := exec.CommandContext(ctx, "net", append([]string{"-s", std.SMBConf}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("net %v: %v\n%s", args, err, out)
		}
	}
	snaps := map[*testlab.Target]snapshot{}
	for _, tg := range lab.Targets {
		if !tg.NoSMB {
			warmSvcctl(ctx, t, tg)
		}
		snaps[tg] = takeSnapshot(ctx, t, tg)
	}

	t.Run("standard", func(t *testing.T) {
		code, c := checkHost(ctx, t, std.Admin.User, std.Admin.Password, std.Addr.String())
		if code != 0 || !c.Ready || c.Method != "scm" {
			t.Fatalf("exit %d ready %v method %q", code, c.Ready, c.Method)
		}
		for _, p := range []struct {
			n  string
			it checkItem
		}{{"tcp135", c.TCP135}, {"tcp139", c.TCP139}, {"tcp445", c.TCP445}} {
			wantItem(t, p.n, p.it, "ok", "open", "")
		}
		wantItem(t, "smb", c.SMB, "ok", "3.1.1", "")
		if c.SMB.Dialect != "3.1.1" || c.SMB.Transport != "tcp445" || c.SMB.Signed == nil || !*c.SMB.Signed || c.SMB.Encrypted == nil || !*c.SMB.Encrypted {
			t.Errorf("smb %+v", c.SMB)
		}
		wantItem(t, "credentials", c.Credentials, "ok", "valid", "")
		wantItem(t, "admin", c.Admin, "ok", "administrator", "")
		wantItem(t, "sharing_model", c.SharingModel, "ok", "classic", "")
		// Read through winreg, since Remote Registry runs: the seeded
		// values.
		wantItem(t, "ntlm_level", c.NTLMLevel, "warn", "2", "ntlm-level-low")
		wantItem(t, "uac", c.UAC, "ok", "LocalAccountTokenFilterPolicy=1", "")
		wantItem(t, "remote_registry", c.RemoteRegistry, "ok", "running", "")
		wantItem(t, "wmi", c.WMI, "ok", "reachable", "")
		if c.WMI.Port <= 0 || c.WMI.Port == 135 {
			t.Errorf("wmi dynamic port %d", c.WMI.Port)
		}
		wantItem(t, "launch", c.Launch, "ok", "scm", "")
		snaps[std].unchanged(ctx, t)
		calls := emuCalls(t, stdEmu)
		noWrites(t, calls)
		if !strings.Contains(strings.Join(calls, "\n"), "op=NTLMLogin") {
			t.Errorf("WMI was not reached on its dynamic port:\n%s", strings.Join(calls, "\n"))
		}
	})

	t.Run("non-admin account", func(t *testing.T) {
		code, c := checkHost(ctx, t, std.User.User, std.User.Password, std.Addr.String())
		if code != 1 || c.Ready {
			t.Fatalf("exit %d ready %v", code, c.Ready)
		}
		wantItem(t, "credentials", c.Credentials, "ok", "valid", "")
		if c.Admin.Status != "fail" || c.Admin.Code == "" || c.Admin.Code != c.Code || c.Launch.Code != c.Code {
			t.Errorf("admin %+v launch %+v code %q", c.Admin, c.Launch, c.Code)
		}
		wantItem(t, "remote_registry", c.RemoteRegistry, "unknown", "needs an administrator logon", "")
		snaps[std].unchanged(ctx, t)
		noWrites(t, emuCalls(t, stdEmu))
		last := connectFailure(ctx, t, console, std.User.User, std.User.Password, std.Addr.String())
		if last.Code != c.Code || last.Diagnosis != c.Diagnosis {
			t.Errorf("connect says %s %q, the check %s %q", last.Code, last.Diagnosis, c.Code, c.Diagnosis)
		}
	})

	// Variants that fail at the logon, each on the item it is about, as
	// a connect fails.
	for _, v := range []struct {
		name        string
		tgt         *testlab.Target
		item        func(checkResult) checkItem
		value, code string
	}{
		{"guest-only", guest, func(c checkResult) checkItem { return c.SharingModel }, "guest-only", "guest-only"},
		{"NTLM disabled", noNTLM, func(c checkResult) checkItem { return c.NTLMLevel }, "refused", "ntlm-blocked"},
	} {
		t.Run(v.name, func(t *testing.T) {
			code, c := checkHost(ctx, t, v.tgt.Admin.User, v.tgt.Admin.Password, v.tgt.Addr.String())
			if code != 1 || c.Ready {
				t.Fatalf("exit %d ready %v", code, c.Ready)
			}
			it := v.item(c)
			wantItem(t, v.name, it, "fail", v.value, v.code)
			wantItem(t, "smb", c.SMB, "ok", "3.1.1", "")
			wantItem(t, "tcp135", c.TCP135, "warn", "refused", "")
			snaps[v.tgt].unchanged(ctx, t)
			last := connectFailure(ctx, t, console, v.tgt.Admin.User, v.tgt.Admin.Password, v.tgt.Addr.String())
			if last.Code != v.code || last.Diagnosis != it.Diagnosis {
				t.Errorf("connect says %s %q, the check %q", last.Code, last.Diagnosis, it.Diagnosis)
			}
		})
	}

	t.Run("139 only", func(t *testing.T) {
		code, c := checkHost(ctx, t, only139.Admin.User, only139.Admin.Password, only139.Addr.String(), "-method", "scm")
		if code != 0 || !c.Ready {
			t.Fatalf("exit %d ready %v", code, c.Ready)
		}
		wantItem(t, "tcp445", c.TCP445, "warn", "refused", "")
		wantItem(t, "tcp139", c.TCP139, "ok", "open", "")
		if c.SMB.Status != "ok" || c.SMB.Transport != "nbt139" {
			t.Errorf("smb %+v", c.SMB)
		}
		wantItem(t, "launch", c.Launch, "ok", "scm", "")
		wantItem(t, "wmi", c.WMI, "unknown", "not checked", "")
		snaps[only139].unchanged(ctx, t)
	})

	t.Run("445 closed", func(t *testing.T) {
		code, c := checkHost(ctx, t, noSMB.Admin.User, noSMB.Admin.Password, noSMB.Addr.String())
		if code != 1 || c.Ready {
			t.Fatalf("exit %d ready %v", code, c.Ready)
		}
		wantItem(t, "tcp445", c.TCP445, "fail", "refused", "firewall-445-refused")
		wantItem(t, "tcp139", c.TCP139, "fail", "refused", "firewall-445-refused")
		wantItem(t, "smb", c.SMB, "fail", "unreachable", "firewall-445-refused")
		wantItem(t, "credentials", c.Credentials, "unknown", "not tried", "")
		if !strings.Contains(c.SMB.Diagnosis, "139") {
			t.Errorf("the diagnosis does not name 139: %q", c.SMB.Diagnosis)
		}
		snaps[noSMB].unchanged(ctx, t)
		last := connectFailure(ctx, t, console, noSMB.Admin.User, noSMB.Admin.Password, noSMB.Addr.String())
		if last.Code != c.Code || last.Diagnosis != c.Diagnosis {
			t.Errorf("connect says %s %q, the check %s %q", last.Code, last.Diagnosis, c.Code, c.Diagnosis)
		}
	})

	t.Run("WMI dynamic port filtered", func(t *testing.T) {
		code, c := checkHost(ctx, t, wmiFault.Admin.User, wmiFault.Admin.Password, wmiFault.Addr.String())
		if code != 0 || !c.Ready {
			t.Fatalf("exit %d ready %v", code, c.Ready)
		}
		wantItem(t, "wmi", c.WMI, "fail", "unreachable", "wmi-dynamic-port-filtered")
		wantItem(t, "tcp135", c.TCP135, "ok", "open", "")
		wantItem(t, "launch", c.Launch, "ok", "scm", "")
		// With WMI as the only method, the check is not ready, with the
		// diagnosis a connect ends with.
		code, w := checkHost(ctx, t, wmiFault.Admin.User, wmiFault.Admin.Password, wmiFault.Addr.String(), "-method", "wmi")
		if code != 1 || w.Ready || w.Launch.Status != "fail" || w.Launch.Value != "none" || w.Code != c.WMI.Code {
			t.Fatalf("-method wmi: exit %d, launch %+v, code %q", code, w.Launch, w.Code)
		}
		snaps[wmiFault].unchanged(ctx, t)
		noWrites(t, emuCalls(t, faultEmu))
		last := connectFailure(ctx, t, console, wmiFault.Admin.User, wmiFault.Admin.Password, wmiFault.Addr.String(), "-method", "wmi")
		if last.Code != w.Code || last.Diagnosis != w.Diagnosis {
			t.Errorf("connect says %s %q, the check %s %q", last.Code, last.Diagnosis, w.Code, w.Diagnosis)
		}
	})

	t.Run("text, several hosts", func(t *testing.T) {
		bin := buildBin(t, "connect", "")
		cmd := exec.CommandContext(ctx, bin, "-check", "-user", std.Admin.User, std.Addr.String(), noSMB.Addr.String())
		cmd.Env = append(os.Environ(), "LANCONNECT_PASSWORD="+std.Admin.Password)
		out, err := cmd.Output()
		t.Logf("connect -check:\n%s", out)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("exit: %v", err)
		}
		text := string(out)
		if strings.Count(text, "): READY\n") != 1 || strings.Count(text, "): NOT READY\n") != 1 {
			t.Errorf("want one READY and one NOT READY block")
		}
		for _, item := range checkItems {
			if strings.Count(text, "\n  "+item+" ") != 2 {
				t.Errorf("item %s not once per host", item)
			}
		}
		snaps[std].unchanged(ctx, t)
		noWrites(t, emuCalls(t, stdEmu))
	})
}
