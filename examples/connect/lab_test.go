package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// The lab tests build connect, the example applet (for this machine: the
// lab's winemu runs it as a process) and winemu, start winemu next to
// Samba in the targets' namespaces, and run connect in the root namespace
// against the targets' lab addresses.

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

func buildBin(t testing.TB, name, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[name]; ok {
		return b
	}
	if pkg == "" {
		t.Fatalf("%s was not built", name)
	}
	dir, err := os.MkdirTemp("", "connect-test-bin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if name == "connect" && os.Getenv("LANCONNECT_BENCH_MEMPROFILE") != "" {
		// memprofile_debug.go: heap profiles at connect's peak (the bulk
		// bench); the connect that ships has no such knob.
		args = append(args, "-tags", "lanconnect_memprofile")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[name] = bin
	return bin
}

// emu is a winemu (or wmiemu) process on one lab target.
type emu struct {
	tgt  *testlab.Target
	proc *testlab.Process
	ctl  string // winemu's control socket; empty for wmiemu
}

// startWinemu runs winemu in tgt's namespace with ADMIN$ as its Windows
// directory and the target's admin account, as a Windows target's SCM
// would serve it.
func startWinemu(ctx context.Context, t testing.TB, tgt *testlab.Target, password string) *emu {
	t.Helper()
	t.Setenv("WINEMU_PASSWORD", password)
	e := launchWinemu(ctx, t, tgt)
	waitPort(t, net.JoinHostPort(tgt.Addr.String(), "135"), e.proc)
	return e
}

// launchWinemu is startWinemu without the password (taken from
// WINEMU_PASSWORD, which the caller sets) and without waiting for it to
// listen.
func launchWinemu(ctx context.Context, t testing.TB, tgt *testlab.Target) *emu {
	t.Helper()
	bin := buildBin(t, "winemu", "github.com/lanconnect/lanconnect/internal/winemu/cmd/winemu")
	ctl := filepath.Join(t.TempDir(), "winemu.ctl")
	p, err := tgt.Start(ctx, bin, "-listen", tgt.Addr.String(), "-root", tgt.AdminDir, "-control", ctl,
		"-user", tgt.Admin.User, "-name", tgt.NetBIOSName, "-workgroup", tgt.Workgroup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	return &emu{tgt: tgt, proc: p, ctl: ctl}
}

// startWMIEmu runs winemu with DCOM/WMI (its wmiemu test helper) in tgt's
// namespace, with ADMIN$ as its Windows directory; extra are more wmiemu
// flags (for example "-fault", "filter-dynamic").
func startWMIEmu(ctx context.Context, t *testing.T, tgt *testlab.Target, serverFault string, extra ...string) *emu {
	t.Helper()
	bin := buildBin(t, "wmiemu", "github.com/lanconnect/lanconnect/internal/winemu/testdata/wmiemu")
	t.Setenv("WINEMU_PASSWORD", tgt.Admin.Password)
	p, err := tgt.Start(ctx, bin, append([]string{"-listen", tgt.Addr.String(), "-root", tgt.AdminDir, "-user", tgt.Admin.User,
		"-name", tgt.NetBIOSName, "-workgroup", tgt.Workgroup, "-os-caption", "Microsoft Windows 11 Pro", "-os-version", "10.0.26100", "-os-build", "26100", "-server-fault", serverFault}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	waitPort(t, net.JoinHostPort(tgt.Addr.String(), "135"), p)
	return &emu{tgt: tgt, proc: p}
}

func waitPort(t testing.TB, addr string, p *testlab.Process) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("nothing listening on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// buildAll builds the binaries before any lab or deadline starts.
func buildAll(t testing.TB) {
	buildBin(t, "winemu", "github.com/lanconnect/lanconnect/internal/winemu/cmd/winemu")
	buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	buildBin(t, "connect", "github.com/lanconnect/lanconnect/examples/connect")
	buildBin(t, "wmiemu", "github.com/lanconnect/lanconnect/internal/winemu/testdata/wmiemu")
}

// winemuServices asks winemu which services exist ("name:state:pid" each).
func winemuServices(t testing.TB, ctl string) []string {
	t.Helper()
	return strings.Fields(winemuControl(t, ctl, "services"))
}

// winemuControl sends one command to winemu's control socket and returns
// the reply after "ok".
func winemuControl(t testing.TB, ctl, cmd string) string {
	t.Helper()
	c, err := net.Dial("unix", ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, cmd)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ok") {
		t.Fatalf("winemu control %s: %q %v", cmd, line, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "ok"))
}

type event struct {
	Host      string `json:"host"`
	State     string `json:"state"`
	Step      string `json:"step"`
	Time      string `json:"time"`
	Method    string `json:"method"`
	Error     string `json:"error"`
	Diagnosis string `json:"diagnosis"`
	Code      string `json:"code"`
	Event     string `json:"event"`
	AppletPID int    `json:"applet_pid"`
	Cleanup   *struct {
		Undone []string `json:"undone"`
		Left   []string `json:"left"`
	} `json:"cleanup"`
	raw map[string]any
}

type runResult struct {
	code   int
	events []event
	stderr string
	took   time.Duration
	start  time.Time // when connect was started
	// cpu is connect's user plus system CPU time, from the same rusage;
	// sys is the system part.
	cpu, sys time.Duration
	// maxRSS is connect's peak resident set size in bytes, from the
	// kernel's rusage of the exited child (ru_maxrss).
	maxRSS int64
}

func (r runResult) of(host string) []event {
	var out []event
	for _, e := range r.events {
		if e.Host == host {
			out = append(out, e)
		}
	}
	return out
}

func (r runResult) last(host string) event {
	evs := r.of(host)
	if len(evs) == 0 {
		return event{}
	}
	return evs[len(evs)-1]
}

// runConnect runs the connect binary with -json and parses its output.
func runConnect(ctx context.Context, t testing.TB, password string, args ...string) runResult {
	t.Helper()
	return runConnectIn(ctx, t, nil, password, args...)
}

// runConnectIn is runConnect inside the namespace ns (nil: this one).
func runConnectIn(ctx context.Context, t testing.TB, ns *testlab.Netns, password string, args ...string) runResult {
	t.Helper()
	bin := buildBin(t, "connect", "github.com/lanconnect/lanconnect/examples/connect")
	cmd := ns.Command(ctx, bin, append([]string{"-json", "-v"}, args...)...)
	cmd.Env = append(os.Environ(), "LANCONNECT_PASSWORD="+password)
	// On a deadline, SIGQUIT makes a hung connect print its goroutines.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	r := runResult{stderr: stderr.String(), took: time.Since(t0), start: t0}
	if ps := cmd.ProcessState; ps != nil {
		r.cpu, r.sys = ps.UserTime()+ps.SystemTime(), ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss * 1024 // Linux reports kilobytes
		}
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("connect: %v", err)
	}
	r.events = parseEvents(t, stdout.Bytes())
	if strings.Contains(stdout.String(), password) || strings.Contains(r.stderr, password) {
		t.Fatal("the password appears in connect's output")
	}
	return r
}

func parseEvents(t testing.TB, b []byte) []event {
	t.Helper()
	var evs []event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not NDJSON: %q: %v", sc.Text(), err)
		}
		if err := json.Unmarshal(sc.Bytes(), &e.raw); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"host", "state", "step", "time", "method", "error", "diagnosis"} {
			if _, ok := e.raw[f]; !ok {
				t.Fatalf("event without %q: %s", f, sc.Text())
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
			t.Fatalf("time %q: %v", e.Time, err)
		}
		evs = append(evs, e)
	}
	return evs
}

func brief(evs []event) string {
	var s []string
	for _, e := range evs {
		x := e.State + "/" + e.Step
		if e.Method != "" {
			x += "[" + e.Method + "]"
		}
		if e.Event != "state" {
			x = e.Event + ":" + x
		}
		s = append(s, x)
	}
	return strings.Join(s, " ")
}

// appletProc is a running process whose program lies in a lab target's
// ADMIN$ directory.
type appletProc struct {
	pid     int
	cmdline string
}

// appletsOn returns the processes that run a program from tgt's ADMIN$
// directory: the applets that winemu started on that target and that are
// still running. It sees only this lab's target, because the lab's
// directories are its own. A scan for any "lcapplet-" command line (as
// this test once made) also sees the applets of other packages' lab tests
// that go test ./... runs at the same time, which made this test fail at
// random in CI.
func appletsOn(tgt *testlab.Target) []appletProc {
	var out []appletProc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone, or a zombie
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if strings.HasPrefix(argv[0], tgt.AdminDir+string(filepath.Separator)) {
			out = append(out, appletProc{pid: pid, cmdline: strings.Join(argv, " ")})
		}
	}
	return out
}

// checkNoApplets fails the test when an applet started on one of the
// emulated targets still runs. Each winemu finishes a stop (service stop,
// Win32_Process.Terminate, the 1053 path of its "did-not-start" fault)
// only once the process is reaped, and connect reports Closed only after
// those calls, so nothing may be running when connect has exited. On
// failure it prints every applet start and exit the emulators logged,
// with the launcher that started it, so that the leftover's origin is
// known.
func checkNoApplets(t testing.TB, emus ...*emu) {
	t.Helper()
	var left []string
	for _, e := range emus {
		for _, p := range appletsOn(e.tgt) {
			left = append(left, fmt.Sprintf("pid %d on %s: %s", p.pid, e.tgt.Addr, p.cmdline))
		}
	}
	if len(left) == 0 {
		return
	}
	var starts []string
	for _, e := range emus {
		starts = append(starts, appletStarts(e)...)
	}
	t.Fatalf("applet processes left:\n  %s\napplet starts and exits logged by the emulators:\n  %s",
		strings.Join(left, "\n  "), strings.Join(starts, "\n  "))
}

// appletStarts returns the emulator's log lines about the processes it
// started and reaped: the SCM's ("service process started/exited", with
// the service name) and WMI's ("Win32_Process.Create started a process",
// "wmi process exited"), each with its PID.
func appletStarts(e *emu) []string {
	b, err := os.ReadFile(e.proc.LogPath())
	if err != nil {
		return []string{fmt.Sprintf("%s: no emulator log: %v", e.tgt.Addr, err)}
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, m := range []string{"service process started", "service process exited", "Win32_Process.Create started", "wmi process exited", "did-not-start"} {
			if strings.Contains(l, m) {
				launcher := "scm"
				if strings.Contains(l, "Win32_Process") || strings.Contains(l, "wmi process") {
					launcher = "wmi"
				}
				out = append(out, fmt.Sprintf("%s [%s] %s", e.tgt.Addr, launcher, l))
				break
			}
		}
	}
	return out
}

// leftovers lists what lanconnect may have left under the target's
// Windows directory: applet files, temporary copies and session folders.
// It fails the test when the applet went anywhere but a session folder
// directly under ADMIN$.
func leftovers(t testing.TB, tgt *testlab.Target) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(tgt.AdminDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := strings.ToLower(d.Name())
		if strings.Contains(name, "lcapplet") {
			out = append(out, p)
			if dir := filepath.Dir(p); filepath.Dir(dir) != tgt.AdminDir || !strings.HasPrefix(filepath.Base(dir), "lanconnect-") {
				t.Errorf("applet file %s is not in a session folder directly under ADMIN$", p)
			}
		}
		if d.IsDir() && strings.HasPrefix(name, "lanconnect-") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// checkRunningThenClosed checks that host reached Running through method,
// with the applet's check-in, then Closed with nothing left; it returns
// the Closed event.
func checkRunningThenClosed(t testing.TB, r runResult, host, method string) event {
	t.Helper()
	evs := r.of(host)
	if len(evs) == 0 {
		t.Fatalf("no events for %s; stderr:\n%s", host, r.stderr)
	}
	var running *event
	for i, e := range evs {
		if e.State == "Running" {
			running = &evs[i]
			break
		}
	}
	last := evs[len(evs)-1]
	if running == nil || last.State != "Closed" || r.code != 0 {
		t.Fatalf("exit %d, events %s\nlast %+v\nstderr:\n%s", r.code, brief(evs), last, r.stderr)
	}
	if running.Method != method || running.AppletPID <= 0 || running.Step != "checkin" {
		t.Fatalf("running event %+v", *running)
	}
	if last.Cleanup == nil || len(last.Cleanup.Left) != 0 || len(last.Cleanup.Undone) == 0 {
		t.Fatalf("cleanup %+v", last.Cleanup)
	}
	return last
}

func TestLabConnect(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {Variant: testlab.GuestOnly}, {NoSMB: true}, {}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	std, guest, closed := lab.Targets[0], lab.Targets[1], lab.Targets[2]
	stdEmu := startWinemu(ctx, t, std, std.Admin.Password)
	ctl := stdEmu.ctl
	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	console := net.JoinHostPort(lab.HostAddr.String(), "0")
	base := []string{"-console", console, "-applet", applet, "-checkin-timeout", "30s"}

	t.Run("scm", func(t *testing.T) {
		r := runConnect(ctx, t, std.Admin.Password, append(base, "-user", std.Admin.User, "-method", "scm", "-param", "Note=lab", std.Addr.String())...)
		host := std.Addr.String()
		checkRunningThenClosed(t, r, host, "scm")
		checkTransport(t, r, host, "tcp445")
		want := []string{"Connecting/authenticate", "Connecting/preflight", "Connecting/deploy"}
		if got := strings.Fields(brief(r.of(host))); !slices.Equal(got[:3], want) {
			t.Fatalf("events %v", got)
		}
		// The parameter key written through Remote Registry is gone with
		// every level remotereg created: Samba's registry has no vendor
		// key (while HKLM\SOFTWARE itself reads fine).
		if out, err := exec.CommandContext(ctx, "net", "-s", std.SMBConf, "registry", "enumerate", `HKLM\SOFTWARE`).CombinedOutput(); err != nil {
			t.Fatalf("net registry enumerate: %v\n%s", err, out)
		} else if strings.Contains(string(out), "LanConnect") {
			t.Fatalf("registry keys left:\n%s", out)
		}
		t.Logf("scm: %s (%v)", brief(r.of(host)), r.took)
		if l := leftovers(t, std); len(l) != 0 {
			t.Fatalf("left on the target: %v", l)
		}
		checkNoApplets(t, stdEmu)
		if s := winemuServices(t, ctl); len(s) != 0 {
			t.Fatalf("services left: %v", s)
		}
	})

	t.Run("keep, then cleanup from the journal", func(t *testing.T) {
		jdir := t.TempDir()
		r := runConnect(ctx, t, std.Admin.Password, append(base, "-user", std.Admin.User, "-method", "scm", "-keep", "-journal", jdir, "-param", "Note=kept", std.Addr.String())...)
		last := r.last(std.Addr.String())
		if r.code != 0 || last.State != "Running" || last.Method != "scm" || last.AppletPID <= 0 {
			t.Fatalf("exit %d, events %s\n%s", r.code, brief(r.of(std.Addr.String())), r.stderr)
		}
		// Nothing was undone: the applet's file and parameter key stay.
		out, err := exec.CommandContext(ctx, "net", "-s", std.SMBConf, "registry", "enumerate", `HKLM\SOFTWARE`).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "LanConnect") {
			t.Fatalf("parameter key not kept (%v):\n%s", err, out)
		}
		l := leftovers(t, std)
		if len(l) != 2 { // the session's folder and the applet in it
			t.Fatalf("applet file and folder not kept: %v", l)
		}
		// The folder is named after the session: lanconnect-<session>.<random>,
		// and holds lcapplet-<session>.exe.
		var folder, file string
		for _, p := range l {
			if strings.HasSuffix(p, ".exe") {
				file = filepath.Base(p)
			} else {
				folder = filepath.Base(p)
			}
		}
		sid := strings.TrimSuffix(strings.TrimPrefix(file, "lcapplet-"), ".exe")
		if sid == "" || !strings.HasPrefix(folder, "lanconnect-"+sid+".") {
			t.Fatalf("folder %q does not carry the session ID of %q", folder, file)
		}
		// The session's journal was persisted; -cleanup undoes it.
		files, _ := filepath.Glob(filepath.Join(jdir, "*.json"))
		if len(files) != 1 {
			t.Fatalf("journal files: %v", files)
		}
		bin := buildBin(t, "connect", "")
		cmd := exec.CommandContext(ctx, bin, "-cleanup", "-user", std.Admin.User, files[0])
		cmd.Env = append(os.Environ(), "LANCONNECT_PASSWORD="+std.Admin.Password)
		out, err = cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("connect -cleanup: %v\n%s", err, out)
		}
		t.Logf("connect -cleanup:\n%s", out)
		if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
			t.Fatalf("journal file still there: %v", err)
		}
		if l := leftovers(t, std); len(l) != 0 {
			t.Fatalf("left on the target: %v", l)
		}
		if out, _ := exec.CommandContext(ctx, "net", "-s", std.SMBConf, "registry", "enumerate", `HKLM\SOFTWARE`).CombinedOutput(); strings.Contains(string(out), "LanConnect") {
			t.Fatalf("registry keys left:\n%s", out)
		}
		if s := winemuServices(t, ctl); len(s) != 0 {
			t.Fatalf("services left: %v", s)
		}
	})

	// Target 3's SCM starts services that never report running (error
	// 1053, an applet that is not service-aware); its WMI works.
	wmiEmu := startWMIEmu(ctx, t, lab.Targets[3], "did-not-start")

	t.Run("auto falls back from scm to wmi", func(t *testing.T) {
		wtgt := lab.Targets[3]
		r := runConnect(ctx, t, wtgt.Admin.Password, append(base, "-user", wtgt.Admin.User, wtgt.Addr.String())...)
		host := wtgt.Addr.String()
		checkRunningThenClosed(t, r, host, "wmi")
		got := brief(r.of(host))
		if !strings.Contains(got, "Connecting/launch[scm] attempt:Connecting/launch[scm] Connecting/launch[wmi] Connecting/checkin[wmi] Running/checkin[wmi]") {
			t.Fatalf("events %s", got)
		}
		for _, e := range r.of(host) {
			if e.Event == "attempt" && (e.Error == "" || e.Diagnosis == "") {
				t.Fatalf("attempt without error or diagnosis: %+v", e.raw)
			}
		}
		t.Logf("fallback: %s", got)
		checkNoApplets(t, wmiEmu)
		if l := leftovers(t, wtgt); len(l) != 0 {
			t.Fatalf("left on the target: %v", l)
		}
	})

	t.Run("wmi", func(t *testing.T) {
		wtgt := lab.Targets[3]
		r := runConnect(ctx, t, wtgt.Admin.Password, append(base, "-user", wtgt.Admin.User, "-method", "wmi", wtgt.Addr.String())...)
		host := wtgt.Addr.String()
		checkRunningThenClosed(t, r, host, "wmi")
		t.Logf("wmi: %s (%v)", brief(r.of(host)), r.took)
		if l := leftovers(t, wtgt); len(l) != 0 {
			t.Fatalf("left on the target: %v", l)
		}
		checkNoApplets(t, wmiEmu)
	})

	t.Run("non-admin without a terminal", func(t *testing.T) {
		r := runConnect(ctx, t, std.User.Password, append(base, "-user", std.User.User, std.Addr.String())...)
		last := r.last(std.Addr.String())
		if r.code != 1 || last.State != "Failed" || last.Step != "authenticate" || last.Diagnosis == "" {
			t.Fatalf("exit %d last %+v\n%s", r.code, last, r.stderr)
		}
		t.Logf("non-admin: %s", last.Diagnosis)
	})

	t.Run("guest-only", func(t *testing.T) {
		r := runConnect(ctx, t, guest.Admin.Password, append(base, "-user", guest.Admin.User, guest.Addr.String())...)
		last := r.last(guest.Addr.String())
		if r.code != 1 || last.State != "Failed" || last.Step != "authenticate" || !strings.Contains(strings.ToLower(last.Diagnosis), "guest") {
			t.Fatalf("exit %d last %+v\n%s", r.code, last, r.stderr)
		}
		t.Logf("guest-only: %s", last.Diagnosis)
	})

	t.Run("445 closed", func(t *testing.T) {
		r := runConnect(ctx, t, closed.Admin.Password, append(base, "-user", closed.Admin.User, closed.Addr.String())...)
		last := r.last(closed.Addr.String())
		if r.code != 1 || last.State != "Failed" || last.Step != "authenticate" || !strings.Contains(strings.ToLower(last.Diagnosis), "firewall") {
			t.Fatalf("exit %d last %+v\n%s", r.code, last, r.stderr)
		}
		t.Logf("445 closed: %s", last.Diagnosis)
	})
}

// checkTransport checks that the first Running event of host says which
// transport carried its SMB session, and that no event before
// authentication says one.
func checkTransport(t *testing.T, r runResult, host, want string) {
	t.Helper()
	running := false
	for _, e := range r.of(host) {
		got, has := e.raw["transport"]
		if e.State == "Running" && !running {
			running = true
			if got != want {
				t.Fatalf("Running event transport %v, want %q: %+v", got, want, e.raw)
			}
		}
		if e.State == "Connecting" && has {
			t.Fatalf("a Connecting event carries a transport: %+v", e.raw)
		}
	}
}

// TestLabConnect139 connects to a target that serves SMB on TCP 139
// only: the logon, the admin checks (a file in ADMIN$ and
// \pipe\svcctl), the preflight over \pipe\winreg, the applet's copy
// and the cleanup ride the NetBIOS session; winemu launches the applet,
// which checks in.
func TestLabConnect139(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{Variant: testlab.SMB139Only}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tg := lab.Targets[0]
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(tg.Addr.String(), "445"), 2*time.Second); err == nil {
		c.Close()
		t.Fatal("the 139-only target answers on 445")
	}
	e := startWinemu(ctx, t, tg, tg.Admin.Password)
	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	console := net.JoinHostPort(lab.HostAddr.String(), "0")
	r := runConnect(ctx, t, tg.Admin.Password, "-console", console, "-applet", applet, "-checkin-timeout", "30s",
		"-user", tg.Admin.User, "-method", "scm", "-param", "Note=nbt", tg.Addr.String())
	host := tg.Addr.String()
	checkRunningThenClosed(t, r, host, "scm")
	checkTransport(t, r, host, "nbt139")
	// The preflight read the registry through \pipe\winreg on 139.
	if got := strings.Fields(brief(r.of(host))); len(got) < 3 || got[1] != "Connecting/preflight" {
		t.Fatalf("events %v", got)
	}
	for _, ev := range r.of(host) {
		notes, _ := ev.raw["notes"].([]any)
		for _, n := range notes {
			if strings.Contains(fmt.Sprint(n), "could not be read") {
				t.Fatalf("preflight failed over 139: %v", n)
			}
		}
	}
	t.Logf("139: %s (%v)", brief(r.of(host)), r.took)
	if l := leftovers(t, tg); len(l) != 0 {
		t.Fatalf("left on the target: %v", l)
	}
	checkNoApplets(t, e)
	if s := winemuServices(t, e.ctl); len(s) != 0 {
		t.Fatalf("services left: %v", s)
	}
	if out, _ := exec.CommandContext(ctx, "net", "-s", tg.SMBConf, "registry", "enumerate", `HKLM\SOFTWARE`).CombinedOutput(); strings.Contains(string(out), "LanConnect") {
		t.Fatalf("registry keys left:\n%s", out)
	}
}

// TestLabConnectArch copies the applet variant that matches each target's
// architecture: one whose registry says x86 (PROCESSOR_ARCHITECTURE,
// seeded into Samba's registry), one whose registry is silent and whose
// WMI says "ARM 64-bit Processor" (wmiemu); and a target no variant fits
// fails before anything is copied. The variants are the example applet
// with different padding, so the copied size says which one went.
func TestLabConnectArch(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	x86, arm := lab.Targets[0], lab.Targets[1]
	for _, args := range [][]string{
		{"registry", "createkey", `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment`},
		{"registry", "setvalue", `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment`, "PROCESSOR_ARCHITECTURE", "sz", "x86"},
	} {
		if out, err := exec.CommandContext(ctx, "net", append([]string{"-s", x86.SMBConf}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("net %v: %v\n%s", args, err, out)
		}
	}
	x86Emu := startWinemu(ctx, t, x86, x86.Admin.Password)
	armEmu := startWMIEmuArch(ctx, t, arm, "ARM 64-bit Processor")

	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	b, err := os.ReadFile(applet)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{}
	sizes := map[string]int64{}
	for i, arch := range []string{"386", "amd64", "arm64"} {
		f := filepath.Join(dir, arch+".exe")
		// Bytes after an ELF's last section are never loaded: the
		// variants run alike and differ in size only.
		if err := os.WriteFile(f, append(append([]byte(nil), b...), make([]byte, 4096*(i+1))...), 0o755); err != nil {
			t.Fatal(err)
		}
		files[arch], sizes[arch] = f, int64(len(b)+4096*(i+1))
	}
	console := net.JoinHostPort(lab.HostAddr.String(), "0")
	base := []string{"-console", console, "-checkin-timeout", "30s"}
	copied := func(r runResult, host string) int64 {
		var total int64 = -1
		for _, e := range r.of(host) {
			if e.Event == "progress" {
				total = int64(e.raw["total"].(float64))
			}
		}
		return total
	}

	t.Run("x86 from the registry", func(t *testing.T) {
		r := runConnect(ctx, t, x86.Admin.Password, append(base, "-user", x86.Admin.User, "-method", "scm",
			"-applet", "windows/amd64="+files["amd64"], "-applet", "windows/386="+files["386"], "-applet", "windows/arm64="+files["arm64"], x86.Addr.String())...)
		host := x86.Addr.String()
		checkRunningThenClosed(t, r, host, "scm")
		run := runningEvent(t, r, host)
		if run.raw["applet_arch"] != "386" || run.raw["arch"] != "386" || copied(r, host) != sizes["386"] {
			t.Fatalf("applet_arch %v, arch %v, copied %d bytes (386 is %d)", run.raw["applet_arch"], run.raw["arch"], copied(r, host), sizes["386"])
		}
		checkNoApplets(t, x86Emu)
	})

	t.Run("ARM64 from WMI", func(t *testing.T) {
		r := runConnect(ctx, t, arm.Admin.Password, append(base, "-user", arm.Admin.User,
			"-applet", "windows/amd64="+files["amd64"], "-applet", "windows/arm64="+files["arm64"], arm.Addr.String())...)
		host := arm.Addr.String()
		checkRunningThenClosed(t, r, host, "scm")
		run := runningEvent(t, r, host)
		if run.raw["applet_arch"] != "arm64" || run.raw["arch"] != "arm64" || copied(r, host) != sizes["arm64"] {
			t.Fatalf("applet_arch %v, arch %v, copied %d bytes (arm64 is %d)", run.raw["applet_arch"], run.raw["arch"], copied(r, host), sizes["arm64"])
		}
		if l := leftovers(t, arm); len(l) != 0 {
			t.Fatalf("left on the target: %v", l)
		}
		checkNoApplets(t, armEmu)
	})

	t.Run("no variant for x86", func(t *testing.T) {
		r := runConnect(ctx, t, x86.Admin.Password, append(base, "-user", x86.Admin.User, "-method", "scm",
			"-applet", "windows/amd64="+files["amd64"], "-applet", "windows/arm64="+files["arm64"], x86.Addr.String())...)
		host := x86.Addr.String()
		last := r.last(host)
		if r.code != 1 || last.State != "Failed" || last.Step != "deploy" || last.Code != "applet-arch-unsupported" ||
			!strings.Contains(last.Diagnosis, "x86") || !strings.Contains(last.Diagnosis, "193") {
			t.Fatalf("exit %d, last %+v\n%s", r.code, last.raw, r.stderr)
		}
		for _, e := range r.of(host) {
			if e.Event == "progress" || e.Step == "launch" {
				t.Fatalf("copied or launched: %+v", e.raw)
			}
		}
		if l := leftovers(t, x86); len(l) != 0 {
			t.Fatalf("left on the target: %v", l)
		}
		if s := winemuServices(t, x86Emu.ctl); len(s) != 0 {
			t.Fatalf("services: %v", s)
		}
	})
}

// runningEvent returns the first Running event of host.
func runningEvent(t *testing.T, r runResult, host string) event {
	t.Helper()
	for _, e := range r.of(host) {
		if e.State == "Running" {
			return e
		}
	}
	t.Fatalf("no Running event for %s: %s", host, brief(r.of(host)))
	return event{}
}

// startWMIEmuArch runs wmiemu (SCM and WMI) in tgt's namespace, its
// Win32_OperatingSystem reporting OSArchitecture arch.
func startWMIEmuArch(ctx context.Context, t *testing.T, tgt *testlab.Target, arch string) *emu {
	t.Helper()
	bin := buildBin(t, "wmiemu", "github.com/lanconnect/lanconnect/internal/winemu/testdata/wmiemu")
	t.Setenv("WINEMU_PASSWORD", tgt.Admin.Password)
	p, err := tgt.Start(ctx, bin, "-listen", tgt.Addr.String(), "-root", tgt.AdminDir, "-user", tgt.Admin.User,
		"-name", tgt.NetBIOSName, "-workgroup", tgt.Workgroup, "-os-arch", arch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	waitPort(t, net.JoinHostPort(tgt.Addr.String(), "135"), p)
	return &emu{tgt: tgt, proc: p}
}

// TestLabConnectBulk connects to eight targets at once and reports the
// wall time and each host's time to Running.
func TestLabConnectBulk(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	const n = 8
	buildAll(t)
	lab := testlab.New(t, testlab.Options{Targets: make([]testlab.TargetSpec, n)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-console", net.JoinHostPort(lab.HostAddr.String(), "0"), "-applet", buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet"),
		"-method", "scm", "-concurrency", strconv.Itoa(n)}
	pw, addrs, emus := startBulkTargets(ctx, t, lab)
	args = append(args, "-user", lab.Targets[0].Admin.User)
	// The first run meets every target cold: Samba spawns its RPC
	// daemons (samba-dcerpcd) at the first svcctl open of the admin
	// check. The second run is what a repeated push costs.
	for _, run := range []string{"cold", "warm"} {
		r := runConnect(ctx, t, pw, append(args, addrs...)...)
		var took, auth []time.Duration
		for _, a := range addrs {
			evs := r.of(a)
			checkRunningThenClosed(t, r, a, "scm")
			t0, _ := time.Parse(time.RFC3339Nano, evs[0].Time)
			for _, e := range evs {
				if e.Step == "preflight" {
					t1, _ := time.Parse(time.RFC3339Nano, e.Time)
					auth = append(auth, t1.Sub(t0))
					break
				}
			}
			for _, e := range evs {
				if e.State == "Running" {
					t1, _ := time.Parse(time.RFC3339Nano, e.Time)
					took = append(took, t1.Sub(t0))
					break
				}
			}
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		sort.Slice(auth, func(i, j int) bool { return auth[i] < auth[j] })
		p95 := took[(len(took)*95+99)/100-1]
		t.Logf("bulk (%s): %d hosts, wall %v (connect process), time to Running: median %v, p95 %v; authentication median %v",
			run, n, r.took.Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), p95.Round(time.Millisecond), auth[len(auth)/2].Round(time.Millisecond))
	}
	checkNothingLeft(t, emus...)
}

// checkNothingLeft fails the test when an applet still runs on one of
// the winemu targets, or a service or file of lanconnect is left there.
func checkNothingLeft(t testing.TB, emus ...*emu) {
	t.Helper()
	checkNoApplets(t, emus...)
	for _, e := range emus {
		if s := winemuServices(t, e.ctl); len(s) != 0 {
			t.Fatalf("services left on %s: %v", e.tgt.Addr, s)
		}
		if l := leftovers(t, e.tgt); len(l) != 0 {
			t.Fatalf("files left on %s: %v", e.tgt.Addr, l)
		}
	}
}

// startBulkTargets prepares every target of lab for one bulk push: the
// lab gives each target its own password, and a bulk push uses one
// account, so every target gets the first target's password, in Samba
// and in a winemu of its own. The passwords are set and the emulators
// launched all at once (4 at a time for smbpasswd), then each emulator is
// waited for. It returns the password, the targets' addresses and their
// emulators.
func startBulkTargets(ctx context.Context, t testing.TB, lab *testlab.Lab) (pw string, addrs []string, emus []*emu) {
	t.Helper()
	pw = lab.Targets[0].Admin.Password
	errs := make([]error, len(lab.Targets))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, tgt := range lab.Targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = smbpasswd(ctx, tgt, pw)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("WINEMU_PASSWORD", pw)
	for _, tgt := range lab.Targets {
		emus = append(emus, launchWinemu(ctx, t, tgt))
		addrs = append(addrs, tgt.Addr.String())
	}
	for _, e := range emus {
		waitPort(t, net.JoinHostPort(e.tgt.Addr.String(), "135"), e.proc)
	}
	return pw, addrs, emus
}

// setPassword gives the target's admin account pw in Samba's database.
func setPassword(ctx context.Context, t testing.TB, tgt *testlab.Target, pw string) {
	t.Helper()
	if err := smbpasswd(ctx, tgt, pw); err != nil {
		t.Fatal(err)
	}
}

// smbpasswd is setPassword's command, returning its error.
func smbpasswd(ctx context.Context, tgt *testlab.Target, pw string) error {
	cmd := exec.CommandContext(ctx, "smbpasswd", "-c", tgt.SMBConf, "-s", tgt.Admin.User)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("%s\n%s\n", pw, pw))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("smbpasswd on %s: %v\n%s", tgt.Addr, err, out)
	}
	return nil
}

// TestLabBulkWrongPassword: a bulk run with a wrong shared password makes
// one failed logon in total, counted in the targets' own auth audit logs;
// every other host fails without being tried.
func TestLabBulkWrongPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	const n = 5
	lab := testlab.New(t, testlab.Options{Targets: make([]testlab.TargetSpec, n)})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var addrs []string
	for _, tgt := range lab.Targets {
		addrs = append(addrs, tgt.Addr.String())
	}
	args := []string{"-console", net.JoinHostPort(lab.HostAddr.String(), "0"), "-applet", buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet"),
		"-method", "scm", "-concurrency", strconv.Itoa(n), "-user", lab.Targets[0].Admin.User}
	r := runConnect(ctx, t, "not-the-password-1", append(args, addrs...)...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	refused, failures := 0, 0
	for _, a := range addrs {
		last := r.last(a)
		switch {
		case last.State != "Failed":
			t.Fatalf("%s: %s", a, brief(r.of(a)))
		case strings.HasPrefix(last.Diagnosis, "Not tried on "+a):
			refused++
		case strings.Contains(last.Error, "STATUS_LOGON_FAILURE"):
			failures++
		default:
			t.Fatalf("%s: unexpected failure %q / %q", a, last.Error, last.Diagnosis)
		}
	}
	if failures != 1 || refused != n-1 {
		t.Fatalf("%d logon failures and %d hosts not tried, want 1 and %d", failures, refused, n-1)
	}
	// What the targets saw. smbd writes its log lines as it handles the
	// logon, before the client sees the answer, so they are on disk now.
	total := 0
	for i, tgt := range lab.Targets {
		l, err := tgt.FailedLogons()
		if err != nil {
			t.Fatal(err)
		}
		if len(l) > 0 {
			t.Logf("%s logged: %q", addrs[i], l)
		}
		total += len(l)
	}
	if total != 1 {
		t.Fatalf("the targets logged %d failed logons, want exactly 1", total)
	}
}
