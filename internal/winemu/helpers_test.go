package winemu_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	dcerrors "github.com/oiweiwei/go-msrpc/dcerpc/errors"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/credential"

	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

const (
	adminUser = "Administrator"
	adminPass = "Adm1n-Passw0rd"
	plainUser = "bob"
	plainPass = "b0b-Passw0rd"
)

// checkLeaks fails the test if goroutines started during it are still
// running once it (and its cleanups registered later) finished.
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

type env struct {
	srv  *winemu.Server
	ip   string
	root string
	logs *testutil.LockedBuffer
}

// startServer runs a server on a fresh loopback address with the endpoint
// mapper on port 135 and svcctl on a dynamic port.
func startServer(t testing.TB, configure ...func(*winemu.Server)) *env {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "Temp"), 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LockedBuffer{}
	srv := &winemu.Server{
		Users: map[string]winemu.User{
			adminUser: {Password: adminPass, Admin: true},
			plainUser: {Password: plainPass},
		},
		Root:        root,
		NetBIOSName: "TARGET1",
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range configure {
		f(srv)
	}
	ip := testutil.LoopbackIP()
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx, ip); err != nil {
		cancel()
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("cannot listen on %s:135: %v", ip, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		srv.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &env{srv: srv, ip: ip, root: root, logs: logs}
}

// dialSCM dials svcctl the way Windows clients do: ncacn_ip_tcp without
// a port, resolved through the endpoint mapper on 135, then NTLM at the
// given level with per-connection credentials.
func (e *env) dialSCM(ctx context.Context, t testing.TB, user, pass string, level dcerpc.AuthLevel, mechs ...dcerpc.Option) (svcctl.SvcctlClient, func()) {
	t.Helper()
	cli, closeFn, err := e.tryDialSCM(ctx, user, pass, level, mechs...)
	if err != nil {
		t.Fatalf("dial svcctl: %v", err)
	}
	return cli, closeFn
}

// tryDialSCM is dialSCM returning the error. mechs default to NTLM.
func (e *env) tryDialSCM(ctx context.Context, user, pass string, level dcerpc.AuthLevel, mechs ...dcerpc.Option) (svcctl.SvcctlClient, func(), error) {
	if len(mechs) == 0 {
		mechs = []dcerpc.Option{dcerpc.WithMechanism(ssp.NTLM)}
	}
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+e.ip, epm.EndpointMapper(ctx, e.ip, dcerpc.WithInsecure()))
	if err != nil {
		return nil, nil, err
	}
	opts := append([]dcerpc.Option{
		dcerpc.WithSecurityLevel(level),
		dcerpc.WithCredentials(credential.NewFromPassword(user, pass)),
	}, mechs...)
	cli, err := svcctl.NewSvcctlClient(ctx, cc, opts...)
	if err != nil {
		cc.Close(ctx)
		return nil, nil, err
	}
	return cli, func() { cc.Close(context.Background()) }, nil
}

// faultCode extracts the DCE/RPC fault status from a go-msrpc error.
func faultCode(err error) (uint32, bool) {
	var e *dcerrors.Error
	if errors.As(err, &e) {
		if v, ok := e.Value.(uint32); ok {
			return v, true
		}
	}
	var r *dcerrors.RPCError
	if errors.As(err, &r) {
		return r.Code, true
	}
	return 0, false
}

// reportRunning is the shell line with which a test service reports to
// the emulated SCM that it runs (see winemu.ServiceStatusFDEnv).
const reportRunning = `[ -n "$` + winemu.ServiceStatusFDEnv + `" ] && echo running >&"$` + winemu.ServiceStatusFDEnv + `"` + "\n"

// installSleeper installs under Root, as Temp\<name>, a service-aware
// sleep: a bash script that reports running to the SCM and then execs
// sleep with its own path as argv[0], so the process's command line is
// the service's.
func (e *env) installSleeper(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(e.root, "Temp", name)
	if err := os.WriteFile(p, sleeperScript(t), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// sleeperScript is the content installSleeper installs.
func sleeperScript(t testing.TB) []byte {
	t.Helper()
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skipf("no /bin/bash: %v", err)
	}
	return []byte("#!/bin/bash\n" + reportRunning + `exec -a "$0" sleep "$@"` + "\n")
}

// waitExec returns the command line of a started service process once
// it runs exe (a script reports running before it execs its program).
func waitExec(pid int, exe string) ([]string, bool) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		args, ok := procCmdline(pid)
		if ok && len(args) > 0 && args[0] == exe || time.Now().After(deadline) {
			return args, ok
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// installPlainSleeper copies /bin/sleep under Root as Temp\<name>: a
// program that is not a service and never reports to the SCM.
func (e *env) installPlainSleeper(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Skipf("no /bin/sleep: %v", err)
	}
	p := filepath.Join(e.root, "Temp", name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// installScript writes an executable shell script under Root as Temp\<name>.
func (e *env) installScript(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(e.root, "Temp", name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// procCmdline returns the command line of a live process.
func procCmdline(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return nil, false
		}
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), true
}

// waitProcs polls findProcs until it finds exactly one process (a
// just-started process may not show its command line yet).
func waitProcs(marker string) []int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if pids := findProcs(marker); len(pids) == 1 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// findProcs returns the PIDs whose command line contains marker.
func findProcs(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		if args, ok := procCmdline(pid); ok && strings.Contains(strings.Join(args, " "), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// rc returns the Return field of a (possibly nil) svcctl response for
// failure messages.
func rc(v any) any {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || (rv.Kind() == reflect.Pointer && rv.IsNil()) {
		return "<nil>"
	}
	f := reflect.Indirect(rv).FieldByName("Return")
	if !f.IsValid() {
		return "?"
	}
	return f.Interface()
}
