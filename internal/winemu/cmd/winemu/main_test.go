package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/credential"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

// syncBuffer is a goroutine-safe buffer that signals when a line with a
// given prefix shows up.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q in %q", s, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestUsageErrors(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"no listen", []string{"-root", root, "-user", "a"}, map[string]string{"WINEMU_PASSWORD": "p"}},
		{"bad listen", []string{"-listen", "host", "-root", root, "-user", "a"}, map[string]string{"WINEMU_PASSWORD": "p"}},
		{"no root", []string{"-listen", "127.0.0.1", "-user", "a"}, map[string]string{"WINEMU_PASSWORD": "p"}},
		{"no password", []string{"-listen", "127.0.0.1", "-root", root, "-user", "a"}, nil},
		{"password flag", []string{"-listen", "127.0.0.1", "-root", root, "-user", "a", "-password", "secret-pw"}, nil},
		{"zero service timeout", []string{"-listen", "127.0.0.1", "-root", root, "-user", "a", "-service-timeout", "0s"}, map[string]string{"WINEMU_PASSWORD": "p"}},
		{"bad service timeout", []string{"-listen", "127.0.0.1", "-root", root, "-user", "a", "-service-timeout", "soon"}, map[string]string{"WINEMU_PASSWORD": "p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb syncBuffer
			if code := run(context.Background(), tc.args, env(tc.env), &out, &errb); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
			}
			if strings.Contains(errb.String(), "secret-pw") {
				t.Fatal("password echoed")
			}
		})
	}
}

func startRun(t *testing.T, extra ...string) (ip, root string, stdout, stderr *syncBuffer, cancel context.CancelFunc, exit chan int) {
	t.Helper()
	root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "Temp"), 0o755); err != nil {
		t.Fatal(err)
	}
	ip = fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(250), 2+rand.IntN(250))
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	exit = make(chan int, 1)
	finished := make(chan struct{})
	args := append([]string{"-listen", ip, "-root", root, "-user", "Administrator", "-name", "LABPC1"}, extra...)
	go func() {
		defer close(finished)
		exit <- run(ctx, args, env(map[string]string{"WINEMU_PASSWORD": "S3cret!"}), stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("winemu did not stop")
		}
	})
	stdout.waitFor(t, "winemu listening")
	return ip, root, stdout, stderr, cancel, exit
}

// launch creates and starts a service running sleep with a unique
// argument (a bash script that reports running to the SCM, then execs
// sleep under its own name) and returns that marker and the PID.
func launch(t *testing.T, ip, root string) (string, int) {
	t.Helper()
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("no /bin/bash")
	}
	fd := `"$` + winemu.ServiceStatusFDEnv + `"`
	b := []byte("#!/bin/bash\necho running >&" + fd + "\nexec -a \"$0\" sleep \"$@\"\n")
	if err := os.WriteFile(filepath.Join(root, "Temp", "app.exe"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+ip, epm.EndpointMapper(ctx, ip, dcerpc.WithInsecure()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close(ctx)
	cli, err := svcctl.NewSvcctlClient(ctx, cc, dcerpc.WithSeal(), dcerpc.WithMechanism(ssp.NTLM),
		dcerpc.WithCredentials(credential.NewFromPassword("Administrator", "S3cret!")))
	if err != nil {
		t.Fatal(err)
	}
	scm, err := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: 0x3})
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("%d", 90000+rand.IntN(9000))
	svc, err := cli.CreateServiceW(ctx, &svcctl.CreateServiceWRequest{ServiceManager: scm.SCM, ServiceName: "LCCmd",
		DesiredAccess: 0xf01ff, ServiceType: 0x10, StartType: 3, BinaryPathName: `C:\Windows\Temp\app.exe ` + marker})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc.Service}); err != nil {
		t.Fatal(err)
	}
	// Right after exec the kernel may not show the command line yet.
	var pids []int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if pids = findProcs(marker); len(pids) == 1 || time.Now().After(deadline) {
			break
		}
	}
	if len(pids) != 1 {
		t.Fatalf("processes with marker: %v", pids)
	}
	return marker, pids[0]
}

func findProcs(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), "app.exe "+marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	ip, root, _, stderr, cancel, exit := startRun(t)
	marker, _ := launch(t, ip, root)
	cancel() // what SIGTERM does
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("winemu did not stop")
	}
	if pids := findProcs(marker); len(pids) != 0 {
		t.Fatalf("started process outlived winemu: %v", pids)
	}
	logs := stderr.String()
	for _, want := range []string{"op=RCreateServiceW", "op=RStartServiceW", "user=Administrator", "msg=stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logs, "S3cret!") {
		t.Fatal("password logged")
	}
}

// TestRunKeepServices keeps only the services whose names match.
func TestRunKeepServices(t *testing.T) {
	ip, root, _, _, cancel, exit := startRun(t, "-keep-services", "other,lccm?")
	marker, pid := launch(t, ip, root) // service LCCmd matches lccm?
	cancel()
	<-exit
	if pids := findProcs(marker); len(pids) != 1 || pids[0] != pid {
		t.Fatalf("kept process not running: %v", pids)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

func TestRunKeepProcesses(t *testing.T) {
	ip, root, _, _, cancel, exit := startRun(t, "-keep-processes")
	marker, pid := launch(t, ip, root)
	cancel()
	<-exit
	if pids := findProcs(marker); len(pids) != 1 || pids[0] != pid {
		t.Fatalf("kept process not running: %v", pids)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

func TestRunControlSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "winemu.ctl")
	ip, root, _, _, _, _ := startRun(t, "-fault", "deny", "-control", sock)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	ask := func(cmd string) string {
		t.Helper()
		if _, err := fmt.Fprintln(c, cmd); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(line)
	}
	if got := ask("status"); got != "ok deny" {
		t.Fatalf("status = %q", got)
	}
	if got := ask("bogus"); !strings.HasPrefix(got, "error ") {
		t.Fatalf("bogus = %q", got)
	}
	if got := ask("deny=off,tamper=6:4:1:2:sealed"); got != "ok tamper=6:4:1:2:sealed" {
		t.Fatalf("set = %q", got)
	}
	if got := ask("none"); got != "ok none" {
		t.Fatalf("none = %q", got)
	}
	launch(t, ip, root)
	if got := ask("services"); !strings.HasPrefix(got, "ok LCCmd:4:") {
		t.Fatalf("services = %q", got)
	}
}

func TestRunBadFaultFlag(t *testing.T) {
	var out, errb syncBuffer
	args := []string{"-listen", "127.0.0.1", "-root", t.TempDir(), "-user", "a", "-fault", "explode"}
	if code := run(context.Background(), args, env(map[string]string{"WINEMU_PASSWORD": "p"}), &out, &errb); code != 2 {
		t.Fatalf("exit %d", code)
	}
}
