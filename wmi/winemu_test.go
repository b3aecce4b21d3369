package wmi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	msrpcwmi "github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmio"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// These tests run winemu (with DCOM/WMI) in this process on a fresh
// loopback address: port 135 and a dynamic port on 127.x.y.z. go-msrpc's
// unchanged DCOM/WMI client is driven by this package.

type emu struct {
	srv    *winemu.Server
	wmi    *winemu.WMI
	host   string
	root   string
	admin  adauth.Credentials
	user   adauth.Credentials
	applet string // Windows path of the test applet
	logs   *testutil.LockedBuffer
	// closers run at cleanup, after the server closed.
	closers []func() error
}

// startEmu runs winemu with WMI, an administrator and a plain user, and
// a stand-in applet (a shell script that sleeps) under C:\Windows\Temp.
// Each configure function may change the server before it starts.
func startEmu(t testing.TB, configure ...func(*winemu.Server)) *emu {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "Temp"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nsleep 300\n"
	if err := os.WriteFile(filepath.Join(root, "Temp", "applet.exe"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	adminPass := "Adm1n-" + strconv.Itoa(rand.IntN(1e6))
	userPass := "B0b-" + strconv.Itoa(rand.IntN(1e6))
	admin, err := adauth.Parse(`.\Administrator`, adminPass)
	if err != nil {
		t.Fatal(err)
	}
	user, err := adauth.Parse(`.\bob`, userPass)
	if err != nil {
		t.Fatal(err)
	}
	e := &emu{host: testutil.LoopbackIP(), root: root, admin: admin, user: user, applet: `C:\Windows\Temp\applet.exe`, logs: &testutil.LockedBuffer{}}
	e.srv = &winemu.Server{
		Users: map[string]winemu.User{
			"Administrator": {Password: adminPass, Admin: true},
			"bob":           {Password: userPass},
		},
		Root:        root,
		NetBIOSName: "TARGET1",
		Logger:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range configure {
		f(e.srv)
	}
	e.wmi, err = winemu.EnableWMI(e.srv, winemu.OSInfo{Caption: "Microsoft Windows 11 Pro", Version: "10.0.26100", BuildNumber: "26100"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.srv.Start(ctx, e.host); err != nil {
		cancel()
		t.Fatalf("winemu: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		e.srv.Close()
		e.wmi.Close()
		for _, c := range e.closers {
			c()
		}
		if t.Failed() {
			t.Logf("winemu log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *emu) target() target { return target{Addr: e.host, Credentials: e.admin} }

// checkLeaks fails the test if goroutines started during it are still
// running once it and its later cleanups finished.
func checkLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestLaunchStartsProcess(t *testing.T) {
	checkLeaks(t)
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := &Launcher{}
	objs := e.wmi.Objects()
	h, err := l.launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: e.applet, Args: []string{"-token", "abc def"}})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	// One NTLM security context per connection: port 135 and the
	// dynamic port.
	if n := strings.Count(e.logs.String(), "msg=authenticated"); n != 2 {
		t.Errorf("%d security contexts established for one launch, want 2", n)
	}
	procs := e.wmi.Processes()
	if len(procs) != 1 || !procs[0].Running || uint32(procs[0].PID) != h.PID() {
		t.Fatalf("processes %+v, handle pid %d", procs, h.PID())
	}
	if want := filepath.Join(e.root, "Temp", "applet.exe"); procs[0].Path != want {
		t.Fatalf("path %q, want %q", procs[0].Path, want)
	}
	// The arguments arrive as the applet sees them.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", h.PID()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(cmdline), "-token\x00abc def\x00") {
		t.Fatalf("cmdline %q", cmdline)
	}
	if n := e.wmi.Objects(); n != objs {
		t.Fatalf("remote objects after Launch: %d, before %d (not released)", n, objs)
	}
	running, err := h.Running(ctx)
	if err != nil || !running {
		t.Fatalf("Running = %v, %v", running, err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if p := e.wmi.Processes(); p[0].Running {
		t.Fatalf("still running after Stop: %+v", p)
	}
	if running, err := h.Running(ctx); err != nil || running {
		t.Fatalf("Running after Stop = %v, %v", running, err)
	}
}

func TestPreflight(t *testing.T) {
	checkLeaks(t)
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := (&Launcher{}).preflight(ctx, e.target())
	if err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	if p.Product != "Microsoft Windows 11 Pro" || p.Version != "10.0.26100" || p.Build != "26100" || p.Arch != "64-bit" || len(p.Unknown) != 0 {
		t.Fatalf("preflight %+v", p)
	}
	if n := e.wmi.Objects(); n != 0 {
		t.Fatalf("%d remote objects left", n)
	}
}

func launchErr(t *testing.T, err error) *deploy.LaunchError {
	t.Helper()
	var le *deploy.LaunchError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T) is not a *deploy.LaunchError", err, err)
	}
	return le
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// checkConns fails the test if file descriptors (connections) opened
// during it are still open once it and its later cleanups finished.
func checkConns(t testing.TB) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := openFDs(t)
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("descriptor leak: %d before, %d after", before, n)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// fastTimeouts are short step deadlines for fault tests.
var fastTimeouts = Timeouts{Connect: 2 * time.Second, Activate: 2 * time.Second, Dynamic: 300 * time.Millisecond,
	Login: 2 * time.Second, Exec: 2 * time.Second, Query: 2 * time.Second, Release: time.Second}

func TestFaults(t *testing.T) {
	type tc struct {
		name    string
		setup   func(e *emu, l *Launcher) target
		step    string
		kind    error
		code    diag.Code
		is      []error
		port    string // "135", "dynamic" or "" (not checked)
		maxTime time.Duration
		started bool // the process is started before the failure
	}
	cases := []tc{
		{
			name: "135 refused",
			setup: func(e *emu, _ *Launcher) target {
				return target{Addr: testutil.LoopbackIP(), Credentials: e.admin} // nothing listens there
			},
			step: StepConnect, kind: deploy.ErrUnreachable, code: "wmi-rpc-refused", port: "135", maxTime: 2 * time.Second,
		},
		{
			name:  "135 reset",
			setup: func(e *emu, _ *Launcher) target { e.srv.Faults.SetRefuse(true); return e.target() },
			step:  StepConnect, kind: deploy.ErrUnreachable, code: "wmi-rpc-refused", port: "135", maxTime: 2 * time.Second,
		},
		{
			name:  "dynamic port silent",
			setup: func(e *emu, _ *Launcher) target { e.wmi.Faults.SetBlackhole(true); return e.target() },
			step:  StepConnectDynamic, kind: deploy.ErrTimeout, code: "wmi-dynamic-port-filtered", is: []error{ErrNoAnswer, context.DeadlineExceeded},
			port: "dynamic", maxTime: 3 * time.Second,
		},
		{
			name: "135 filtered",
			setup: func(e *emu, l *Launcher) target {
				p, err := winemu.ListenFiltered(netip.MustParseAddr(testutil.LoopbackIP()))
				if err != nil {
					panic(err)
				}
				e.closers = append(e.closers, p.Close)
				l.EPMPort = int(p.Addr.Port())
				return target{Addr: p.Addr.Addr().String(), Credentials: e.admin}
			},
			step: StepConnect, kind: deploy.ErrUnreachable, code: "wmi-rpc-filtered", is: []error{ErrNoAnswer, context.DeadlineExceeded},
			port: "epm", maxTime: 4 * time.Second,
		},
		{
			name:  "dynamic port filtered",
			setup: func(e *emu, _ *Launcher) target { e.wmi.Faults.SetFilterDynamic(true); return e.target() },
			step:  StepConnectDynamic, kind: deploy.ErrUnreachable, code: "wmi-dynamic-port-filtered", is: []error{ErrNoAnswer, context.DeadlineExceeded},
			port: "dynamic", maxTime: 3 * time.Second,
		},
		{
			name:  "calls hang",
			setup: func(e *emu, _ *Launcher) target { e.srv.Faults.SetHang(true); return e.target() },
			step:  StepServerAlive, kind: deploy.ErrTimeout, code: "wmi-timeout", is: []error{ErrNoAnswer}, port: "135", maxTime: 5 * time.Second,
		},
		{
			name:  "activation denied",
			setup: func(e *emu, _ *Launcher) target { e.wmi.Faults.SetDenyActivation(true); return e.target() },
			step:  StepActivate, kind: deploy.ErrAccessDenied, code: "wmi-dcom-access-denied", is: []error{EAccessDenied}, maxTime: 3 * time.Second,
		},
		{
			name:  "not an administrator",
			setup: func(e *emu, _ *Launcher) target { return target{Addr: e.host, Credentials: e.user} },
			step:  StepActivate, kind: deploy.ErrAccessDenied, code: "wmi-dcom-access-denied", is: []error{EAccessDenied}, maxTime: 3 * time.Second,
		},
		{
			name:  "login denied",
			setup: func(e *emu, _ *Launcher) target { e.wmi.Faults.SetDenyLogin(true); return e.target() },
			step:  StepLogin, kind: deploy.ErrAccessDenied, code: "wmi-access-denied", is: []error{WBEMEAccessDenied}, maxTime: 3 * time.Second,
		},
		{
			name: "wrong password",
			setup: func(e *emu, _ *Launcher) target {
				c, _ := adauth.Parse(`.\Administrator`, "not-the-password")
				return target{Addr: e.host, Credentials: c}
			},
			step: StepServerAlive, kind: deploy.ErrAccessDenied, code: "wmi-access-denied", maxTime: 3 * time.Second,
		},
		{
			name: "tampered ExecMethod response",
			setup: func(e *emu, _ *Launcher) target {
				e.srv.Faults.SetTamper(winemu.TamperSpec{Count: 1, OpNum: 24, Interface: "IWbemServices", SealedOnly: true, StubOffset: 60, Bit: 3})
				return e.target()
			},
			step: StepCreate, code: "rpc-integrity", is: []error{rpcauth.ErrIntegrity}, maxTime: 3 * time.Second, started: true,
		},
	}
	for rv, want := range map[ReturnValue]struct {
		kind error
		code diag.Code
	}{
		ReturnAccessDenied:          {deploy.ErrAccessDenied, "wmi-create-access-denied"},
		ReturnInsufficientPrivilege: {deploy.ErrAccessDenied, "wmi-create-access-denied"},
		ReturnUnknownFailure:        {nil, "wmi-create-failed"},
		ReturnPathNotFound:          {nil, "wmi-create-path-not-found"},
		ReturnInvalidParameter:      {deploy.ErrBadSpec, "wmi-create-invalid-parameter"},
	} {
		cases = append(cases, tc{
			name:  "ReturnValue " + strconv.Itoa(int(rv)),
			setup: func(e *emu, _ *Launcher) target { e.wmi.Faults.SetCreateReturn(uint32(rv)); return e.target() },
			step:  StepCreate, kind: want.kind, code: want.code, is: []error{rv}, maxTime: 3 * time.Second,
		})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkLeaks(t)
			checkConns(t)
			e := startEmu(t)
			l := &Launcher{Timeouts: fastTimeouts}
			tgt := c.setup(e, l)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			h, err := l.launchTarget(ctx, tgt, deploy.LaunchSpec{Path: e.applet})
			took := time.Since(start)
			if err == nil {
				t.Fatalf("Launch succeeded (pid %d)", h.PID())
			}
			le := launchErr(t, err)
			t.Logf("%s after %v: %v", c.name, took.Round(time.Millisecond), err)
			if took > c.maxTime {
				t.Errorf("took %v, deadline budget %v", took, c.maxTime)
			}
			if le.Step != c.step {
				t.Errorf("step %q, want %q", le.Step, c.step)
			}
			if c.kind != nil && !errors.Is(err, c.kind) {
				t.Errorf("kind %v, want %v", le.Kind, c.kind)
			}
			if c.kind == nil && le.Kind != nil {
				t.Errorf("kind %v, want none", le.Kind)
			}
			if le.Diagnosis.Code != c.code {
				t.Errorf("diagnosis %q, want %q (%s)", le.Diagnosis.Code, c.code, le.Diagnosis)
			}
			for _, want := range c.is {
				if !errors.Is(err, want) {
					t.Errorf("error does not match %v", want)
				}
			}
			var ee *EndpointError
			switch c.port {
			case "135":
				if !errors.As(err, &ee) || ee.Port != 135 || ee.Dynamic || !(strings.Contains(err.Error(), ":135: ") || strings.Contains(err.Error(), "port 135 on ")) {
					t.Errorf("error does not name port 135: %v", err)
				}
			case "epm":
				if !errors.As(err, &ee) || ee.Dynamic || !ee.Dial || !strings.Contains(err.Error(), ":"+strconv.Itoa(ee.Port)+": ") {
					t.Errorf("error does not name the endpoint mapper's port: %v", err)
				}
			case "dynamic":
				if !errors.As(err, &ee) || !ee.Dynamic || ee.Port == 0 || ee.Port == 135 ||
					!strings.Contains(err.Error(), "dynamic port "+strconv.Itoa(ee.Port)) ||
					!strings.Contains(le.Diagnosis.Summary, strconv.Itoa(ee.Port)) {
					t.Errorf("error does not name the dynamic port: %v", err)
				}
			}
			if strings.Contains(err.Error(), "Adm1n-") || strings.Contains(le.Diagnosis.String(), "Adm1n-") {
				t.Errorf("the password leaked into the error: %v", err)
			}
			if p := e.wmi.Processes(); len(p) != 0 && !c.started {
				t.Errorf("processes started: %+v", p)
			}
		})
	}
}

// TestCancelIsPrompt cancels launches stuck on a silent dynamic port and
// on a hung call on port 135, with long step deadlines: each must return
// at once, with context.Canceled, and leave nothing behind.
func TestCancelIsPrompt(t *testing.T) {
	for _, c := range []struct {
		name, step, logMark string
		fault               func(e *emu)
	}{
		{"silent dynamic port", StepConnectDynamic, "held by the blackhole", func(e *emu) { e.wmi.Faults.SetBlackhole(true) }},
		{"hung call on 135", StepServerAlive, "result=hung", func(e *emu) { e.srv.Faults.SetHang(true) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkLeaks(t)
			checkConns(t)
			e := startEmu(t)
			c.fault(e)
			l := &Launcher{Timeouts: Timeouts{Dynamic: time.Minute, Activate: time.Minute}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := l.launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: e.applet})
				done <- err
			}()
			// Wait until the emulator holds the launch.
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(e.logs.String(), c.logMark); {
				if time.Now().After(deadline) {
					t.Fatal("the launch never got stuck")
				}
				time.Sleep(5 * time.Millisecond)
			}
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if took := time.Since(start); took > time.Second {
					t.Errorf("cancel took %v", took)
				}
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("error %v does not match context.Canceled", err)
				}
				if le := launchErr(t, err); le.Step != c.step || le.Diagnosis.Code != "canceled" {
					t.Fatalf("step %q diagnosis %q", le.Step, le.Diagnosis.Code)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Launch did not return after cancel")
			}
		})
	}
}

func TestIntegrityLevel(t *testing.T) {
	checkLeaks(t)
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := (&Launcher{Level: rpcauth.Integrity}).launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: e.applet})
	if err != nil {
		t.Fatalf("Launch at PKT_INTEGRITY: %v", err)
	}
	if !strings.Contains(e.logs.String(), "op=ExecMethod opnum=24 user=Administrator auth=10 level=5") {
		t.Fatal("ExecMethod was not called at PKT_INTEGRITY")
	}
	_ = h.Stop(ctx)
	// At PKT_INTEGRITY go-msrpc checks signatures itself: a flipped bit is
	// caught and diagnosed the same way.
	e.srv.Faults.SetTamper(winemu.TamperSpec{Count: 1, OpNum: 24, Interface: "IWbemServices", StubOffset: 60, Bit: 3})
	_, err = (&Launcher{Level: rpcauth.Integrity}).launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: e.applet})
	if le := launchErr(t, err); le.Step != StepCreate || le.Diagnosis.Code != "rpc-integrity" || len(e.srv.Faults.Tampered()) != 1 {
		t.Fatalf("tampered response at PKT_INTEGRITY: %v (%s)", err, le.Diagnosis.Code)
	}
	_, err = (&Launcher{Level: rpcauth.None}).launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: e.applet})
	if !errors.Is(err, deploy.ErrBadSpec) {
		t.Fatalf("Launch without authentication: %v", err)
	}
}

// TestConfirmFailureStopsProcess: when the confirmation query fails after
// Create started the process, Launch terminates it rather than leave it
// running with nobody to watch it.
func TestConfirmFailureStopsProcess(t *testing.T) {
	checkLeaks(t)
	e := startEmu(t)
	e.srv.Faults.SetTamper(winemu.TamperSpec{Count: 1, OpNum: 20, Interface: "IWbemServices", SealedOnly: true, StubOffset: 30, Bit: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := (&Launcher{Timeouts: fastTimeouts}).launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: e.applet})
	if le := launchErr(t, err); le.Step != StepConfirm || !errors.Is(err, rpcauth.ErrIntegrity) {
		t.Fatalf("error %v", err)
	}
	p := e.wmi.Processes()
	if len(p) != 1 || p[0].Running {
		t.Fatalf("processes after a failed confirmation: %+v", p)
	}
}

func TestMissingApplet(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := (&Launcher{}).launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: `C:\Windows\Temp\missing.exe`})
	if !errors.Is(err, ReturnPathNotFound) || launchErr(t, err).Step != StepCreate {
		t.Fatalf("error %v", err)
	}
}

func TestDecodeHostileObjects(t *testing.T) {
	for _, data := range [][]byte{nil, {1, 2}, make([]byte, 64), {0x4d, 0x45, 0x4f, 0x57, 4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}} {
		err := safely(context.Background(), func(context.Context) error {
			_, err := decodeObject(&msrpcwmi.ClassObject{Data: data, DataCount: uint32(len(data))})
			return err
		})
		if err == nil {
			t.Errorf("decodeObject(%x) succeeded", data)
		}
	}
	// A valid reference around garbage CIM data.
	good, err := encodeObject(&wmio.Object{Instance: &wmio.Instance{CurrentClass: wmio.Class{Name: "X"}, ClassName: "X"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(good.Data); i += 7 {
		bad := append([]byte(nil), good.Data...)
		bad[i] ^= 0xff
		_ = safely(context.Background(), func(context.Context) error {
			_, err := decodeObject(&msrpcwmi.ClassObject{Data: bad, DataCount: uint32(len(bad))})
			return err
		})
	}
}

// TestConcurrentLaunches runs launches in parallel on one Launcher.
func TestConcurrentLaunches(t *testing.T) {
	checkLeaks(t)
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := &Launcher{}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	pids := make(chan uint32, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := l.launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: e.applet})
			if err != nil {
				errs <- err
				return
			}
			pids <- h.PID()
			errs <- h.Stop(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	close(pids)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]bool{}
	for p := range pids {
		seen[p] = true
	}
	if len(seen) != 6 || len(e.wmi.Processes()) != 6 {
		t.Fatalf("pids %v, processes %+v", seen, e.wmi.Processes())
	}
	if n := e.wmi.Objects(); n != 0 {
		t.Fatalf("%d objects left", n)
	}
}
