package wmi

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// These tests run winemu (with DCOM/WMI) in this process on a fresh
// loopback address: port 135 and a dynamic port on 127.x.y.z. go-msrpc's
// unchanged DCOM/WMI client is driven by this package.

var (
	ipMu    sync.Mutex
	usedIPs = map[string]bool{}
)

func loopbackIP() string {
	ipMu.Lock()
	defer ipMu.Unlock()
	for {
		ip := fmt.Sprintf("127.%d.%d.%d", 20+rand.IntN(200), rand.IntN(250), 2+rand.IntN(250))
		if !usedIPs[ip] {
			usedIPs[ip] = true
			return ip
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

type emu struct {
	srv    *winemu.Server
	wmi    *winemu.WMI
	host   string
	root   string
	admin  adauth.Credentials
	user   adauth.Credentials
	applet string // Windows path of the test applet
	logs   *lockedBuffer
}

// startEmu runs winemu with WMI, an administrator and a plain user, and
// a stand-in applet (a shell script that sleeps) under C:\Windows\Temp.
func startEmu(t testing.TB) *emu {
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
	e := &emu{host: loopbackIP(), root: root, admin: admin, user: user, applet: `C:\Windows\Temp\applet.exe`, logs: &lockedBuffer{}}
	e.srv = &winemu.Server{
		Users: map[string]winemu.User{
			"Administrator": {Password: adminPass, Admin: true},
			"bob":           {Password: userPass},
		},
		Root:        root,
		NetBIOSName: "TARGET1",
		Logger:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
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
		if t.Failed() {
			t.Logf("winemu log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *emu) target() Target { return Target{Host: e.host, Credentials: e.admin} }

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
	h, err := l.Launch(ctx, e.target(), deploy.LaunchSpec{Path: e.applet, Args: []string{"-token", "abc def"}})
	if err != nil {
		t.Fatalf("Launch: %v", err)
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
	p, err := (&Launcher{}).Preflight(ctx, e.target())
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
