package remotereg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/credential"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// These tests run winemu in this process on a fresh loopback address
// (127.x.y.z, port 135 and a dynamic port), so they need no lab; the
// network namespace end-to-end tests are in lab_test.go.

type testCreds struct{ account, password string }

func (c testCreds) Account() string          { return c.account }
func (c testCreds) Password() (string, bool) { return c.password, c.password != "" }
func (c testCreds) NTHash() []byte           { return nil }

// String keeps the password out of test output.
func (c testCreds) String() string { return c.account }

type emu struct {
	srv    *winemu.Server
	hung   chan struct{} // closed when winemu holds a call in hang mode
	host   string
	root   string
	admin  testCreds
	user   testCreds
	applet string // Windows path of the test applet
}

// startEmu runs winemu with an admin and a plain user, and a stand-in
// applet (a shell script that reports running and sleeps) under
// C:\Windows\Temp.
func startEmu(t *testing.T, configure ...func(*winemu.Server)) *emu {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "Temp"), 0o755); err != nil {
		t.Fatal(err)
	}
	// It reports running to the emulated SCM as a service does.
	script := "#!/bin/sh\necho running >&\"$" + winemu.ServiceStatusFDEnv + "\"\nexec sleep 300\n"
	if err := os.WriteFile(filepath.Join(root, "Temp", "applet.exe"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := &emu{
		host:   testutil.LoopbackIP(),
		root:   root,
		admin:  testCreds{`.\Administrator`, "Adm1n-" + strconv.Itoa(rand.IntN(1e6))},
		user:   testCreds{`.\bob`, "B0b-" + strconv.Itoa(rand.IntN(1e6))},
		applet: `C:\Windows\Temp\applet.exe`,
		hung:   make(chan struct{}),
	}
	e.srv = &winemu.Server{
		Users: map[string]winemu.User{
			"Administrator": {Password: e.admin.password, Admin: true},
			"bob":           {Password: e.user.password},
		},
		Root:   root,
		Logger: slog.New(hungSignal{once: &sync.Once{}, ch: e.hung}),
	}
	for _, f := range configure {
		f(e.srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.srv.Start(ctx, e.host); err != nil {
		cancel()
		t.Fatalf("winemu: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		e.srv.Close()
	})
	return e
}

func (e *emu) target(c testCreds) target { return target{Addr: e.host, Credentials: c} }

func tcpLauncher() *Launcher {
	return &Launcher{Transports: []Transport{TransportTCP}, Backoff: Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond}}
}

func (e *emu) spec() deploy.LaunchSpec {
	return deploy.LaunchSpec{Path: e.applet, Args: []string{"-token", "t0k"}, ServicePrefix: "lc-test-"}
}

// memJournal records changes in memory.
type memJournal struct {
	mu       sync.Mutex
	open     []Change
	resolved []Change
}

func (j *memJournal) Record(_ context.Context, c Change) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.open = append(j.open, c)
	return nil
}

func (j *memJournal) Resolve(_ context.Context, c Change) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, o := range j.open {
		if o == c {
			j.open = append(j.open[:i], j.open[i+1:]...)
			j.resolved = append(j.resolved, c)
			return nil
		}
	}
	return fmt.Errorf("resolve of unrecorded change %v", c)
}

func (j *memJournal) pending() []Change {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Change(nil), j.open...)
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil {
		return false
	}
	// A zombie is not running: check its state.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestLaunchOverTCPEndToEnd(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := &memJournal{}
	l := tcpLauncher()
	h, err := l.launchTarget(ctx, e.target(e.admin), e.spec(), j)
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	if h.Transport() != TransportTCP || !strings.HasPrefix(h.Service(), "lc-test-") || len(h.Service()) != len("lc-test-")+8 {
		t.Fatalf("handle: transport %v service %q", h.Transport(), h.Service())
	}
	svcs := e.srv.SCM().Services()
	if len(svcs) != 1 || svcs[0].Name != h.Service() {
		t.Fatalf("winemu services: %+v", svcs)
	}
	s := svcs[0]
	if s.State != uint32(StateRunning) || s.StartType != uint32(StartDemand) || s.ServiceType != serviceWin32OwnProcess || !s.MarkedForDelete {
		t.Fatalf("service: %+v", s)
	}
	if s.BinaryPath != `"C:\Windows\Temp\applet.exe" -token t0k` {
		t.Fatalf("binary path %q", s.BinaryPath)
	}
	if !processAlive(s.PID) {
		t.Fatalf("applet process %d is not running", s.PID)
	}
	if p := j.pending(); len(p) != 1 || p[0].Kind != ChangeService || p[0].Name != h.Service() {
		t.Fatalf("journal: %v", p)
	}
	if ok, err := h.Running(ctx); err != nil || !ok {
		t.Fatalf("Running = %v, %v", ok, err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if processAlive(s.PID) {
		t.Fatalf("applet process %d survived Stop", s.PID)
	}
	if svcs := e.srv.SCM().Services(); len(svcs) != 0 {
		t.Fatalf("services left after Stop: %+v", svcs)
	}
	if p := j.pending(); len(p) != 0 {
		t.Fatalf("journal still open: %v", p)
	}
	if ok, err := h.Running(ctx); err != nil || ok {
		t.Fatalf("Running after Stop = %v, %v", ok, err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestLaunchKeepServiceDeletesOnStop(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := tcpLauncher()
	l.KeepService = true
	h, err := l.launchTarget(ctx, e.target(e.admin), e.spec(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if svcs := e.srv.SCM().Services(); len(svcs) != 1 || svcs[0].MarkedForDelete {
		t.Fatalf("service should be installed and not marked: %+v", svcs)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if svcs := e.srv.SCM().Services(); len(svcs) != 0 {
		t.Fatalf("services left: %+v", svcs)
	}
}

func expectLaunchError(t *testing.T, err error, kind error) *deploy.LaunchError {
	t.Helper()
	var le *deploy.LaunchError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v (%T), want *deploy.LaunchError", err, err)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Fatalf("err = %v, want kind %v", err, kind)
	}
	if le.Launcher != "scm" || le.Step == "" {
		t.Fatalf("launch error lacks launcher or step: %+v", le)
	}
	return le
}

func TestLaunchAccessDenied(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Run("not admin", func(t *testing.T) {
		_, err := tcpLauncher().launchTarget(ctx, e.target(e.user), e.spec(), nil)
		le := expectLaunchError(t, err, deploy.ErrAccessDenied)
		if le.Diagnosis.Code != "access-denied" || !strings.Contains(le.Diagnosis.Fix, "LocalAccountTokenFilterPolicy") {
			t.Fatalf("diagnosis: %+v", le.Diagnosis)
		}
		if strings.Contains(err.Error(), e.user.password) {
			t.Fatal("error contains the password")
		}
	})
	t.Run("deny mode", func(t *testing.T) {
		e.srv.Faults.SetDeny(true)
		defer e.srv.Faults.SetDeny(false)
		_, err := tcpLauncher().launchTarget(ctx, e.target(e.admin), e.spec(), nil)
		expectLaunchError(t, err, deploy.ErrAccessDenied)
	})
	if svcs := e.srv.SCM().Services(); len(svcs) != 0 {
		t.Fatalf("services left: %+v", svcs)
	}
}

func TestLaunchServiceExists(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := tcpLauncher()
	first.KeepService = true
	first.Rand = bytes.NewReader(make([]byte, 4))
	h, err := first.launchTarget(ctx, e.target(e.admin), e.spec(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(ctx)
	second := tcpLauncher()
	second.Rand = bytes.NewReader(make([]byte, 4)) // the same suffix
	j := &memJournal{}
	_, err = second.launchTarget(ctx, e.target(e.admin), e.spec(), j)
	le := expectLaunchError(t, err, deploy.ErrServiceExists)
	if le.Step != "create service" || le.Diagnosis.Code != "service-exists" {
		t.Fatalf("%+v", le)
	}
	if len(j.pending()) != 0 {
		t.Fatalf("journal has entries for a service we did not create: %v", j.pending())
	}
	// The first launch's service is untouched.
	if ok, err := h.Running(ctx); !ok || err != nil {
		t.Fatalf("first service: running=%v err=%v", ok, err)
	}
}

func TestLaunchNotServiceAware(t *testing.T) {
	e := startEmu(t)
	e.srv.Faults.SetServiceDidNotStart(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := &memJournal{}
	_, err := tcpLauncher().launchTarget(ctx, e.target(e.admin), e.spec(), j)
	le := expectLaunchError(t, err, deploy.ErrNotServiceAware)
	if le.Step != "start service" || le.Diagnosis.Code != "applet-not-service-aware" {
		t.Fatalf("%+v", le)
	}
	if svcs := e.srv.SCM().Services(); len(svcs) != 0 {
		t.Fatalf("service left after failed start: %+v", svcs)
	}
	if len(j.pending()) != 0 || len(j.resolved) != 1 {
		t.Fatalf("journal: open %v resolved %v", j.pending(), j.resolved)
	}
}

// TestLaunchStartErrors runs the SCM's real start failures end to end:
// a program that never reports running (the emulated SCM's wait, here
// 300 ms instead of Windows' 30 s) gives 1053 and the not-a-service
// diagnosis; a file that is no executable for the target gives 193 and
// the architecture diagnosis. Either way the service is removed.
func TestLaunchStartErrors(t *testing.T) {
	e := startEmu(t, func(s *winemu.Server) { s.ServiceStartTimeout = 300 * time.Millisecond })
	if err := os.WriteFile(filepath.Join(e.root, "Temp", "plain.exe"), []byte("#!/bin/sh\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.root, "Temp", "arm64.exe"), []byte("MZ\x90\x00 not a program for this kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		kind error
		code diag.Code
	}{
		{`C:\Windows\Temp\plain.exe`, deploy.ErrNotServiceAware, "applet-not-service-aware"},
		{`C:\Windows\Temp\arm64.exe`, deploy.ErrNotExecutable, "applet-wrong-architecture"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		j := &memJournal{}
		_, err := tcpLauncher().launchTarget(ctx, e.target(e.admin), deploy.LaunchSpec{Path: c.path, ServicePrefix: "lc-test-"}, j)
		cancel()
		le := expectLaunchError(t, err, c.kind)
		if le.Step != "start service" || le.Diagnosis.Code != c.code {
			t.Fatalf("%s: %+v", c.path, le)
		}
		if svcs := e.srv.SCM().Services(); len(svcs) != 0 {
			t.Fatalf("%s: service left after failed start: %+v", c.path, svcs)
		}
		if len(j.pending()) != 0 {
			t.Fatalf("%s: journal: open %v", c.path, j.pending())
		}
	}
}

func TestLaunchHungEndpointFailsWithinDeadline(t *testing.T) {
	e := startEmu(t)
	e.srv.Faults.SetHang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := tcpLauncher().launchTarget(ctx, e.target(e.admin), e.spec(), nil)
	took := time.Since(start)
	le := expectLaunchError(t, err, deploy.ErrTimeout)
	if took > 4*time.Second {
		t.Fatalf("returned after %v, deadline was 2s", took)
	}
	ep := e.srv.Endpoints()
	port := ""
	for _, x := range ep {
		if x.Name == "svcctl" || strings.Contains(strings.ToLower(x.Name), "svcctl") {
			port = strconv.Itoa(int(x.Addr.Port()))
		}
	}
	if port == "" || !strings.Contains(le.Diagnosis.Summary, ":"+port) {
		t.Fatalf("diagnosis %q does not name svcctl's port %q (endpoints %+v)", le.Diagnosis.Summary, port, ep)
	}
	t.Logf("hung endpoint: %v after %v", err, took.Round(time.Millisecond))
}

func TestLaunchCancelled(t *testing.T) {
	e := startEmu(t)
	e.srv.Faults.SetHang(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := tcpLauncher().launchTarget(ctx, e.target(e.admin), e.spec(), nil)
		done <- err
	}()
	// Cancel once the launcher is inside the SCM call that winemu holds.
	select {
	case <-e.hung:
	case <-time.After(10 * time.Second):
		t.Fatal("the SCM call never reached winemu")
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("took %v to return after cancel", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Launch did not return after cancel")
	}
}

func TestLaunchRefusedEndpoint(t *testing.T) {
	e := startEmu(t)
	e.srv.Faults.SetRefuse(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := tcpLauncher().launchTarget(ctx, e.target(e.admin), e.spec(), nil)
	expectLaunchError(t, err, deploy.ErrUnreachable)
}

// TestSealedResponseTamperingOverTCP is the end-to-end proof of the
// integrity fix: winemu flips one bit in a sealed svcctl response. The
// unchanged go-msrpc client takes the corrupted data; the launcher (with
// rpcauth's verifying NTLM) fails with an integrity error.
func TestSealedResponseTamperingOverTCP(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := tcpLauncher()
	port, err := l.mapTCP(ctx, e.host, svcctl.SvcctlSyntaxV2_0)
	if err != nil {
		t.Fatal(err)
	}
	tamper := winemu.TamperSpec{Count: 1, OpNum: 15 /* ROpenSCMW */, Interface: "svcctl", SealedOnly: true, StubOffset: 6, Bit: 3}

	t.Run("unchanged go-msrpc accepts it", func(t *testing.T) {
		e.srv.Faults.SetTamper(tamper)
		before := len(e.srv.Faults.Tampered())
		cc, err := dcerpc.Dial(ctx, fmt.Sprintf("ncacn_ip_tcp:%s[%d]", e.host, port), dcerpc.WithNewTransport())
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close(ctx)
		cli, err := svcctl.NewSvcctlClient(ctx, cc, dcerpc.WithSeal(), dcerpc.WithMechanism(ssp.NTLM),
			dcerpc.WithCredentials(credential.NewFromPassword("Administrator", e.admin.password)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: scManagerConnect})
		if len(e.srv.Faults.Tampered()) != before+1 {
			t.Fatal("winemu did not tamper with the response")
		}
		if err != nil {
			t.Fatalf("go-msrpc rejected the tampered response (%v): the upstream hazard is gone", err)
		}
		t.Logf("go-msrpc accepted a tampered sealed response: handle %x", resp.SCM.UUID)
	})

	t.Run("launcher refuses it", func(t *testing.T) {
		e.srv.Faults.SetTamper(tamper)
		_, err := l.launchTarget(ctx, e.target(e.admin), e.spec(), nil)
		if !errors.Is(err, adauth.ErrIntegrity) {
			t.Fatalf("err = %v, want adauth.ErrIntegrity", err)
		}
		le := expectLaunchError(t, err, nil)
		if le.Diagnosis.Code != "rpc-integrity" || errors.Is(err, deploy.ErrLaunchUnsupported) {
			t.Fatalf("%+v", le)
		}
		if svcs := e.srv.SCM().Services(); len(svcs) != 0 {
			t.Fatalf("services: %+v", svcs)
		}
	})

	t.Run("untampered launch still works", func(t *testing.T) {
		e.srv.Faults.SetTamper(winemu.TamperSpec{})
		h, err := l.launchTarget(ctx, e.target(e.admin), e.spec(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// hungSignal is a slog handler that signals once winemu logs a call it
// holds in hang mode.
type hungSignal struct {
	once *sync.Once
	ch   chan struct{}
}

func (h hungSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h hungSignal) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h hungSignal) WithGroup(string) slog.Handler            { return h }
func (h hungSignal) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "result" && a.Value.String() == "hung" {
			h.once.Do(func() { close(h.ch) })
			return false
		}
		return true
	})
	return nil
}

// TestStartRemoteRegistryRestoresState runs the Remote Registry start
// logic over real svcctl (winemu over TCP) with a disabled, stopped
// "RemoteRegistry" service: it is set to manual, started and waited for,
// the original state is journaled first, and Undo puts it back.
func TestStartRemoteRegistryRestoresState(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := tcpLauncher()
	tg := e.target(e.admin)

	cli, conn, err := l.svcctlOver(ctx, tg, TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	m, err := openSCM(ctx, cli, scManagerConnect|scManagerCreateService)
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.create(ctx, remoteRegistryService, "Remote Registry", `"`+e.applet+`"`, StartDisabled)
	if err != nil {
		t.Fatal(err)
	}
	m.closeService(ctx, h)
	m.close(ctx)
	conn.close(ctx)

	info := func() winemu.ServiceInfo {
		for _, s := range e.srv.SCM().Services() {
			if s.Name == remoteRegistryService {
				return s
			}
		}
		t.Fatal("RemoteRegistry vanished")
		return winemu.ServiceInfo{}
	}

	j := &memJournal{}
	changes, err := l.startRemoteRegistry(ctx, tg, j)
	if err != nil {
		t.Fatal(err)
	}
	want := Change{Kind: ChangeServiceState, Addr: e.host, Name: remoteRegistryService, StartType: StartDisabled, WasRunning: false, Transport: TransportTCP}
	if len(changes) != 1 || changes[0] != want {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	if p := j.pending(); len(p) != 1 || p[0] != want {
		t.Fatalf("journal %v", p)
	}
	if s := info(); s.State != uint32(StateRunning) || s.StartType != uint32(StartDemand) || !processAlive(s.PID) {
		t.Fatalf("after start: %+v", s)
	}

	// Already running: nothing to change, nothing journaled.
	again, err := l.startRemoteRegistry(ctx, tg, j)
	if err != nil || len(again) != 0 || len(j.pending()) != 1 {
		t.Fatalf("second start: %v %v journal %v", again, err, j.pending())
	}

	pid := info().PID
	if err := l.undo(ctx, tg, want); err != nil {
		t.Fatal(err)
	}
	if s := info(); s.State != uint32(StateStopped) || s.StartType != uint32(StartDisabled) || processAlive(pid) {
		t.Fatalf("after undo: %+v", s)
	}
	// Undo is idempotent.
	if err := l.undo(ctx, tg, want); err != nil {
		t.Fatal(err)
	}
}

// TestWinregStartsRemoteRegistryWhenPipeMissing drives the orchestration:
// \pipe\winreg is missing (STATUS_OBJECT_NAME_NOT_FOUND) until the Remote
// Registry service runs; the launcher starts it through the SCM (winemu
// over TCP) and opens the pipe again. Here the pipe then fails for
// another reason, so Launch fails, and its cleanup restores the service.
func TestWinregStartsRemoteRegistryWhenPipeMissing(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := tcpLauncher()
	tg := e.target(e.admin)
	cli, conn, err := l.svcctlOver(ctx, tg, TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	m, err := openSCM(ctx, cli, scManagerConnect|scManagerCreateService)
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.create(ctx, remoteRegistryService, "Remote Registry", `"`+e.applet+`"`, StartDisabled)
	if err != nil {
		t.Fatal(err)
	}
	m.closeService(ctx, h)
	m.close(ctx)
	conn.close(ctx)

	rrRunning := func() bool {
		for _, s := range e.srv.SCM().Services() {
			if s.Name == remoteRegistryService {
				return s.State == uint32(StateRunning)
			}
		}
		return false
	}
	errPipeBroken := errors.New("test: pipe opened, then broke")
	var opens, opensWhileRunning int
	tg.OpenPipe = func(_ context.Context, name string) (net.Conn, error) {
		if name != "winreg" {
			return nil, fmt.Errorf("unexpected pipe %q", name)
		}
		opens++
		if !rrRunning() {
			return nil, &smbconn.Error{Op: "open pipe winreg", Err: smbconn.StatusObjectNameNotFound}
		}
		opensWhileRunning++
		return nil, errPipeBroken
	}
	j := &memJournal{}
	spec := e.spec()
	spec.Params, spec.SessionID, spec.Vendor, spec.Applet = map[string]string{"k": "v"}, "s1", "V", "A"
	_, err = l.launchTarget(ctx, tg, spec, j)
	if !errors.Is(err, errPipeBroken) {
		t.Fatalf("err = %v, want the pipe error after Remote Registry started", err)
	}
	if opens < 2 || opensWhileRunning != 1 {
		t.Fatalf("pipe opened %d times, %d while Remote Registry ran", opens, opensWhileRunning)
	}
	// Cleanup restored the service and resolved the journal.
	for _, s := range e.srv.SCM().Services() {
		if s.Name == remoteRegistryService && (s.State != uint32(StateStopped) || s.StartType != uint32(StartDisabled)) {
			t.Fatalf("Remote Registry not restored: %+v", s)
		}
	}
	if len(j.pending()) != 0 || len(j.resolved) != 1 {
		t.Fatalf("journal open %v resolved %v", j.pending(), j.resolved)
	}
}

// TestHandleReconnects: the handle's SCM connection drops while the
// applet runs; Running and Stop connect again and still work.
func TestHandleReconnects(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := &memJournal{}
	l := tcpLauncher()
	l.KeepService = true // a service marked for deletion cannot be reopened
	h, err := l.launchTarget(ctx, e.target(e.admin), e.spec(), j)
	if err != nil {
		t.Fatal(err)
	}
	pid := e.srv.SCM().Services()[0].PID
	// The server resets the connection at the next PDU.
	e.srv.Faults.SetRefuse(true)
	if _, err := h.Running(ctx); !errors.Is(err, deploy.ErrUnreachable) {
		t.Fatalf("Running while refused: %v", err)
	}
	e.srv.Faults.SetRefuse(false)
	if ok, err := h.Running(ctx); err != nil || !ok {
		t.Fatalf("Running after the drop = %v, %v", ok, err)
	}
	e.srv.Faults.SetRefuse(true)
	if _, err := h.Running(ctx); err == nil {
		t.Fatal("Running while refused succeeded")
	}
	e.srv.Faults.SetRefuse(false)
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("Stop after the drop: %v", err)
	}
	if processAlive(pid) || len(e.srv.SCM().Services()) != 0 || len(j.pending()) != 0 {
		t.Fatalf("not cleaned up: alive=%v services=%+v journal=%v", processAlive(pid), e.srv.SCM().Services(), j.pending())
	}
}

// TestHandleStopRetriesAfterFailure: Stop fails while the SCM refuses
// connections, and a later Stop finishes the job.
func TestHandleStopRetriesAfterFailure(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := &memJournal{}
	l := tcpLauncher()
	l.KeepService = true
	h, err := l.launchTarget(ctx, e.target(e.admin), e.spec(), j)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Faults.SetRefuse(true)
	if err := h.Stop(ctx); !errors.Is(err, deploy.ErrUnreachable) {
		t.Fatalf("Stop while refused: %v", err)
	}
	if len(j.pending()) != 1 {
		t.Fatalf("journal resolved though the service is still there: %v", j.pending())
	}
	e.srv.Faults.SetRefuse(false)
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if len(e.srv.SCM().Services()) != 0 || len(j.pending()) != 0 {
		t.Fatalf("services %+v journal %v", e.srv.SCM().Services(), j.pending())
	}
}

// TestHandleLostConnectionToMarkedService: with the default (service
// marked for deletion once running), a lost SCM connection cannot be
// replaced; Stop says so with a diagnosis, and the journal entry stays
// open until the service is really gone.
func TestHandleLostConnectionToMarkedService(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := &memJournal{}
	h, err := tcpLauncher().launchTarget(ctx, e.target(e.admin), e.spec(), j)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Faults.SetRefuse(true)
	_, _ = h.Running(ctx) // loses the connection
	e.srv.Faults.SetRefuse(false)
	err = h.Stop(ctx)
	var le *deploy.LaunchError
	if !errors.As(err, &le) || le.Diagnosis.Code != "service-marked-for-deletion" {
		t.Fatalf("Stop: %v", err)
	}
	if len(j.pending()) != 1 {
		t.Fatalf("journal: %v", j.pending())
	}
}

// cancelOnRecord cancels the launch as soon as a change is journaled,
// before the call that makes it: whatever the call did, the launch must
// not leave it behind.
type cancelOnRecord struct {
	memJournal
	cancel context.CancelFunc
	on     ChangeKind // the kind that cancels; empty means ChangeService
}

func (c *cancelOnRecord) Record(ctx context.Context, ch Change) error {
	err := c.memJournal.Record(ctx, ch)
	if on := c.on; ch.Kind == on || (on == "" && ch.Kind == ChangeService) {
		c.cancel()
	}
	return err
}

// undoPending undoes what is still journaled, as the session's journal
// undo would, and fails the test when an entry cannot be undone.
func undoPending(ctx context.Context, t *testing.T, l *Launcher, tg target, j *memJournal) {
	t.Helper()
	p := j.pending()
	for i := len(p) - 1; i >= 0; i-- {
		if err := l.undo(ctx, tg, p[i]); err != nil {
			t.Fatalf("undo %v: %v", p[i], err)
		}
		if err := j.Resolve(ctx, p[i]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLaunchCancelledAfterTheServiceIsJournaledLeavesNothing(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j := &cancelOnRecord{cancel: cancel}
	l := tcpLauncher()
	_, err := l.launchTarget(ctx, e.target(e.admin), e.spec(), j)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if svcs := e.srv.SCM().Services(); len(svcs) != 0 {
		t.Fatalf("services left: %+v", svcs)
	}
	// The abandoned call leaves its intent journaled; undoing it is a
	// success although there is nothing to remove.
	if p := j.pending(); len(p) != 1 || p[0].Kind != ChangeService {
		t.Fatalf("journal open %v resolved %v", p, j.resolved)
	}
	undoPending(context.Background(), t, l, e.target(e.admin), &j.memJournal)
}

// TestLaunchCancelledInsideCreateService: winemu creates the service but
// holds CreateService's response; the launch is cancelled meanwhile. The
// service was journaled before the call, the launcher removes it by name,
// and the journal's undo succeeds.
func TestLaunchCancelledInsideCreateService(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.srv.Faults.SetDelay(winemu.DelaySpec{Count: 1, Interface: "svcctl", OpNum: 12, Delay: time.Minute})
	defer e.srv.Faults.SetDelay(winemu.DelaySpec{})
	j := &memJournal{}
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	seen := make(chan error, 1)
	go func() {
		// Cancel once the service exists on the server: the call is
		// carried out, its response held.
		for {
			if svcs := e.srv.SCM().Services(); len(svcs) > 0 {
				p := j.pending()
				if len(p) != 1 || p[0].Name != svcs[0].Name {
					seen <- fmt.Errorf("service %s exists, journal %v: not journaled before the create", svcs[0].Name, p)
				} else {
					seen <- nil
				}
				lcancel()
				return
			}
			select {
			case <-ctx.Done():
				seen <- fmt.Errorf("the service never appeared: %w", ctx.Err())
				lcancel()
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	l := tcpLauncher()
	_, err := l.launchTarget(lctx, e.target(e.admin), e.spec(), j)
	if serr := <-seen; serr != nil {
		t.Fatal(serr)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The launcher asked for its removal at once; it goes when the held
	// call's handle closes.
	e.srv.Faults.SetDelay(winemu.DelaySpec{})
	for svcs := e.srv.SCM().Services(); len(svcs) != 0; svcs = e.srv.SCM().Services() {
		if !svcs[0].MarkedForDelete || ctx.Err() != nil {
			t.Fatalf("service left and not marked for deletion: %+v (%v)", svcs, ctx.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p := j.pending(); len(p) != 1 || p[0].Kind != ChangeService {
		t.Fatalf("journal open %v resolved %v", p, j.resolved)
	}
	undoPending(ctx, t, l, e.target(e.admin), j)
}

// TestHandleStopCancelledThenRetried: a Stop whose context is cancelled
// while winemu holds the call fails; a later Stop on a fresh context
// reconnects and cleans up.
func TestHandleStopCancelledThenRetried(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := &memJournal{}
	l := tcpLauncher()
	l.KeepService = true
	h, err := l.launchTarget(ctx, e.target(e.admin), e.spec(), j)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Faults.SetHang(true)
	sctx, scancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Stop(sctx) }()
	<-e.hung
	scancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Stop: %v", err)
	}
	e.srv.Faults.SetHang(false)
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("retried Stop: %v", err)
	}
	if len(e.srv.SCM().Services()) != 0 || len(j.pending()) != 0 {
		t.Fatalf("services %+v journal %v", e.srv.SCM().Services(), j.pending())
	}
}

// settle waits until the number of goroutines is back to before, or
// fails the test. Run it while the emulator still serves: a connection the
// client forgot keeps goroutines on both sides.
func settle(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNoGoroutineLeaks(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := runtime.NumGoroutine()
	l := tcpLauncher()
	for range 3 {
		h, err := l.launchTarget(ctx, e.target(e.admin), e.spec(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Running(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Failures too: denied, and cancelled after create.
	if _, err := tcpLauncher().launchTarget(ctx, e.target(e.user), e.spec(), nil); err == nil {
		t.Fatal("user launch succeeded")
	}
	c2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	if _, err := l.launchTarget(c2, e.target(e.admin), e.spec(), &cancelOnRecord{cancel: cancel2}); err == nil {
		t.Fatal("cancelled launch succeeded")
	}
	settle(t, before)
}

// TestCallsOutliveGoMSRPCDefaultTimeout: go-msrpc gives up on a response
// after 10 s by default, shorter than Windows' 30 s StartService wait.
// The launcher raises it, so a slow call runs until the caller's
// deadline (12 s here) instead of failing at 10 s.
func TestCallsOutliveGoMSRPCDefaultTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 12 s")
	}
	e := startEmu(t)
	e.srv.Faults.SetHang(true)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
	defer cancel()
	start := time.Now()
	_, err := tcpLauncher().launchTarget(ctx, e.target(e.admin), e.spec(), nil)
	took := time.Since(start)
	if !errors.Is(err, deploy.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if took < 11500*time.Millisecond {
		t.Fatalf("gave up after %v, before the caller's 12 s deadline", took)
	}
}

// TestHandleOutlivesLaunchContext: the caller's usual "defer cancel()" on
// Launch's context must not take the handle's SCM connection with it. The
// service is marked for deletion, so it cannot be reopened by name: Stop
// works only if the launch connection is still alive.
func TestHandleOutlivesLaunchContext(t *testing.T) {
	e := startEmu(t)
	lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
	h, err := tcpLauncher().launchTarget(lctx, e.target(e.admin), e.spec(), nil)
	lcancel() // the launch is over; its context goes
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	svcs := e.srv.SCM().Services()
	if len(svcs) != 1 || !svcs[0].MarkedForDelete || !processAlive(svcs[0].PID) {
		t.Fatalf("service after launch: %+v", svcs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ok, err := h.Running(ctx); err != nil || !ok {
		t.Fatalf("Running after the launch context ended = %v, %v", ok, err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("Stop after the launch context ended: %v", err)
	}
	if processAlive(svcs[0].PID) {
		t.Fatalf("applet %d survived Stop", svcs[0].PID)
	}
	if left := e.srv.SCM().Services(); len(left) != 0 {
		t.Fatalf("services left: %+v", left)
	}
}

// TestLaunchOverTCPChecksIdentity: a target that expects another computer
// than the one answering (winemu calls itself WINEMU) fails at the bind,
// before credentials are sent, and creates nothing; the right name works.
func TestLaunchOverTCPChecksIdentity(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tg := e.target(e.admin)
	tg.ExpectName = "LCREAL"
	_, err := tcpLauncher().launchTarget(ctx, tg, e.spec(), nil)
	if err == nil || !strings.Contains(err.Error(), `expected "LCREAL"`) {
		t.Fatalf("launch expecting LCREAL: %v, want an identity mismatch", err)
	}
	if svcs := e.srv.SCM().Services(); len(svcs) != 0 {
		t.Fatalf("services created: %+v", svcs)
	}
	tg.ExpectName = "winemu"
	h, err := tcpLauncher().launchTarget(ctx, tg, e.spec(), nil)
	if err != nil {
		t.Fatalf("launch expecting winemu: %v", err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
