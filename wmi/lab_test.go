package wmi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/session/checkin"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// buildOnce builds a package once per test binary.
func buildOnce(t *testing.T, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[pkg]; ok {
		return b
	}
	dir, err := os.MkdirTemp("", "wmi-lab-bin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// labOS is what the emulated Win32_OperatingSystem reports in the lab.
var labOS = struct{ caption, version, build string }{"Microsoft Windows Server 2025 Datacenter", "10.0.26100", "26100"}

// startLabWMI runs winemu with DCOM/WMI (the wmiemu test helper) inside
// tgt's network namespace on its lab address, with Root = its ADMIN$
// directory and its administrator account.
func startLabWMI(ctx context.Context, t *testing.T, tgt *testlab.Target, faults string) {
	t.Helper()
	bin := buildOnce(t, "../internal/winemu/testdata/wmiemu")
	t.Setenv("WINEMU_PASSWORD", tgt.Admin.Password)
	p, err := tgt.Start(ctx, bin, "-listen", tgt.Addr.String(), "-root", tgt.AdminDir, "-user", tgt.Admin.User,
		"-name", tgt.NetBIOSName, "-workgroup", tgt.Workgroup, "-fault", faults,
		"-os-caption", labOS.caption, "-os-version", labOS.version, "-os-build", labOS.build)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	addr := net.JoinHostPort(tgt.Addr.String(), "135")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("wmiemu not listening on %s: %v", addr, err)
		}
	}
}

// processNetns returns the network namespace of a process.
func processNetns(pid int) string {
	ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	return ns
}

// TestLabLaunchThroughWMI is the end-to-end lab test: a Samba target with
// winemu (DCOM/WMI) in its network namespace; the console side
// authenticates over SMB (the grant), copies the example applet with
// deploy.Copy, launches it through WMI on the target's address, and the
// applet, running in the target's namespace with the ProcessId WMI
// reported, checks in with a console on the lab bridge. The OS preflight
// is read through WMI too.
func TestLabLaunchThroughWMI(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	checkLeaks(t)
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startLabWMI(ctx, t, tgt, "")

	creds, err := adauth.Parse(tgt.Admin.User, tgt.Admin.Password)
	if err != nil {
		t.Fatal(err)
	}
	grant, err := (&adauth.SMBAuthenticator{}).Authenticate(ctx, tgt.Addr.String(), creds)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	defer grant.Close()

	applet, err := deploy.AppletFromFile("lcapplet-wmi.exe", "test", buildOnce(t, "../examples/applet"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := deploy.Copy(ctx, grant, applet, deploy.CopyOptions{})
	if err != nil {
		t.Fatalf("deploy.Copy: %v", err)
	}

	console := &checkin.Server{Addr: net.JoinHostPort(lab.HostAddr.String(), "0")}
	if err := console.Listen(); err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	pend, err := console.Expect("wmi-lab", "")
	if err != nil {
		t.Fatal(err)
	}

	l := &Launcher{}
	target := targetFromGrant(grant)
	start := time.Now()
	var launcher deploy.Launcher = l
	h, err := launcher.Launch(ctx, &deploy.Target{Addr: grant.Addr, Grant: grant}, deploy.LaunchSpec{Path: res.LocalPath, Args: pend.Ticket().Args()})
	if err != nil {
		t.Fatalf("launch through WMI: %v", err)
	}
	t.Logf("launched %s through WMI in %v, ProcessId %d", res.LocalPath, time.Since(start).Round(time.Millisecond), h.PID())
	defer h.Stop(context.WithoutCancel(ctx))

	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := pend.Wait(wctx)
	wcancel()
	if err != nil {
		t.Fatalf("applet did not check in: %v", err)
	}
	defer conn.Close()

	// The ProcessId is the applet's, and it runs in the target's
	// namespace, not ours.
	pid := int(h.PID())
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "lcapplet-wmi.exe") {
		t.Fatalf("ProcessId %d is not the applet: %q, %v", pid, cmdline, err)
	}
	tgtNS := ""
	if out, err := tgt.Command(ctx, "readlink", "/proc/self/ns/net").Output(); err == nil {
		tgtNS = strings.TrimSpace(string(out))
	}
	if ns := processNetns(pid); ns == "" || ns != tgtNS || ns == processNetns(os.Getpid()) {
		t.Fatalf("applet netns %q, target %q, test %q", ns, tgtNS, processNetns(os.Getpid()))
	}
	if ok, err := h.Running(ctx); err != nil || !ok {
		t.Fatalf("Running = %v, %v", ok, err)
	}

	pf, err := l.preflight(ctx, target)
	if err != nil {
		t.Fatalf("preflight: %v", err)
	}
	if pf.Product != labOS.caption || pf.Version != labOS.version || pf.Build != labOS.build || pf.Arch != "64-bit" {
		t.Fatalf("preflight %+v", pf)
	}
	t.Logf("preflight through WMI: %+v", *pf)

	if err := h.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) || !processAlive(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("applet still running after Stop")
		}
	}
}

// processAlive reports whether pid is running (not a zombie).
func processAlive(pid int) bool {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "State:"); ok {
			return !strings.HasPrefix(strings.TrimSpace(s), "Z")
		}
	}
	return false
}

// TestLabFaults runs the field's failures in the lab, each on a target of
// its own: port 135 answers in the target's namespace, and the dynamic
// port it names is filtered (connects dropped), or accepts and never
// answers, or WMI refuses the login, or Create fails. Each launch must
// fail within its step's deadline, with the step, the port and the
// meaning named.
func TestLabFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	for _, c := range []struct {
		fault, step string
		code        diag.Code
		kind        error
		dynamic     bool
	}{
		{"filter-dynamic", StepConnectDynamic, "wmi-dynamic-port-filtered", deploy.ErrUnreachable, true},
		{"blackhole", StepConnectDynamic, "wmi-dynamic-port-filtered", deploy.ErrTimeout, true},
		{"deny-login", StepLogin, "wmi-access-denied", deploy.ErrAccessDenied, true},
		{"create-return=9", StepCreate, "wmi-create-path-not-found", nil, false},
	} {
		t.Run(c.fault, func(t *testing.T) {
			lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
			tgt := lab.Targets[0]
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			startLabWMI(ctx, t, tgt, c.fault)
			creds, err := adauth.Parse(tgt.Admin.User, tgt.Admin.Password)
			if err != nil {
				t.Fatal(err)
			}
			l := &Launcher{Timeouts: Timeouts{Dynamic: time.Second}}
			start := time.Now()
			_, err = l.launchTarget(ctx, target{Addr: tgt.Addr.String(), Credentials: creds}, deploy.LaunchSpec{Path: `C:\Windows\Temp\x.exe`})
			took := time.Since(start)
			var le *deploy.LaunchError
			if !errors.As(err, &le) || le.Step != c.step || le.Diagnosis.Code != c.code || (c.kind != nil && !errors.Is(err, c.kind)) {
				t.Fatalf("error %v (diagnosis %q)", err, le.Diagnosis.Code)
			}
			var ee *EndpointError
			if c.dynamic && (!errors.As(err, &ee) || !ee.Dynamic || !strings.Contains(err.Error(), "dynamic port "+strconv.Itoa(ee.Port))) {
				t.Fatalf("the dynamic port is not named: %v", err)
			}
			if took > 5*time.Second {
				t.Fatalf("took %v with a 1 s deadline for the dynamic port", took)
			}
			t.Logf("%s in the lab after %v: %s", c.fault, took.Round(time.Millisecond), le.Diagnosis.Summary)
		})
	}
}

// BenchmarkLabWMILaunch measures, in the lab, the launch latency through
// WMI against the SCM over TCP (remotereg's ncacn_ip_tcp transport) on
// the same emulator running in a target's namespace, across the lab
// bridge: 20 launches each, reporting both medians and the ratio. Run
// with -benchtime=1x.
func BenchmarkLabWMILaunch(b *testing.B) {
	if testing.Short() {
		b.Skip("lab benchmark")
	}
	lab := testlab.New(b, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	startLabWMIB(ctx, b, tgt)
	script := "#!/bin/sh\nsleep 300\n"
	if err := os.MkdirAll(filepath.Join(tgt.AdminDir, "Temp"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tgt.AdminDir, "Temp", "lcbench.exe"), []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	creds, err := adauth.Parse(tgt.Admin.User, tgt.Admin.Password)
	if err != nil {
		b.Fatal(err)
	}
	wmiMed, scmMed := measureLaunches(ctx, b, tgt.Addr.String(), creds, deploy.LaunchSpec{Path: `C:\Windows\Temp\lcbench.exe`}, 20)
	b.ReportMetric(float64(wmiMed.Microseconds())/1000, "wmi-median-ms")
	b.ReportMetric(float64(scmMed.Microseconds())/1000, "scm-tcp-median-ms")
	b.ReportMetric(float64(wmiMed)/float64(scmMed), "wmi/scm")
}

// startLabWMIB is startLabWMI for benchmarks.
func startLabWMIB(ctx context.Context, b *testing.B, tgt *testlab.Target) {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "wmiemu")
	if out, err := exec.Command("go", "build", "-o", bin, "../internal/winemu/testdata/wmiemu").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	b.Setenv("WINEMU_PASSWORD", tgt.Admin.Password)
	p, err := tgt.Start(ctx, bin, "-listen", tgt.Addr.String(), "-root", tgt.AdminDir, "-user", tgt.Admin.User, "-name", tgt.NetBIOSName)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Stop() })
	addr := net.JoinHostPort(tgt.Addr.String(), "135")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) || p.Exited() {
			b.Fatalf("wmiemu not listening on %s: %v", addr, err)
		}
	}
}
