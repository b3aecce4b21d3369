package remotereg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/msrpc/rrp/winreg/v1"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/session/checkin"
)

// labCreds adapts a lab account to rpcauth.Credentials (a local account).
type labCreds struct{ a testlab.Account }

func (c labCreds) Account() string          { return `.\` + c.a.User }
func (c labCreds) Password() (string, bool) { return c.a.Password, c.a.Password != "" }
func (c labCreds) NTHash() []byte           { return nil }
func (c labCreds) String() string           { return c.a.User }

// labTarget logs on to tgt over SMB as acct and returns the target that
// the grant would give the launcher: the session's pipes and the
// account's credentials.
func labTarget(ctx context.Context, t *testing.T, tgt *testlab.Target, acct testlab.Account) target {
	t.Helper()
	s, err := smbconn.Dial(ctx, tgt.Addr.String(), smbconn.Auth{User: acct.User, Password: acct.Password}, smbconn.Options{})
	if err != nil {
		t.Fatalf("smb logon: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return target{
		Addr:        tgt.Addr.String(),
		Credentials: labCreds{acct},
		OpenPipe: func(ctx context.Context, name string) (net.Conn, error) {
			return s.OpenPipe(ctx, name)
		},
	}
}

func fastLauncher(tr ...Transport) *Launcher {
	return &Launcher{Transports: tr, Backoff: Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond},
		StartTimeout: 20 * time.Second}
}

// keyExists reports whether HKLM\path exists on the target.
func keyExists(ctx context.Context, t *testing.T, l *Launcher, tg target, path string) bool {
	t.Helper()
	err := tryOpenKey(ctx, t, l, tg, path)
	if errors.Is(err, ErrorFileNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf(`open HKLM\%s: %v`, path, err)
	}
	return true
}

// tryOpenKey opens HKLM\path for reading as tg's account and closes it,
// and returns the open's error.
func tryOpenKey(ctx context.Context, t *testing.T, l *Launcher, tg target, path string) error {
	t.Helper()
	cli, conn, err := l.winregOverPipe(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.close(ctx)
	hklm, err := openHKLM(ctx, cli, maximumAllowed)
	if err != nil {
		t.Fatal(err)
	}
	defer closeKey(ctx, cli, hklm)
	k, err := openKey(ctx, cli, hklm, path, keyQueryValue)
	if err == nil {
		closeKey(ctx, cli, k)
	}
	return err
}

func paramSpec(path string) deploy.LaunchSpec {
	sid := "s" + strconv.FormatInt(time.Now().UnixNano(), 36)
	return deploy.LaunchSpec{
		Path: path, Args: []string{"-x"},
		Params:    map[string]string{"Console": "192.0.2.1:443", "Note": "ünïcode value"},
		SessionID: sid, Vendor: "LanConnectTest", Applet: "Applet", ServicePrefix: "lc-lab-",
	}
}

// TestLabSamba runs the pipe transport against real Samba: winreg
// preflight and parameter keys, SCM open and query, and the "not
// supported" answer to CreateService that sends the launcher to TCP.
func TestLabSamba(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := labTarget(ctx, t, tgt, tgt.Admin)
	l := fastLauncher(TransportPipe)

	t.Run("preflight", func(t *testing.T) {
		p, err := l.preflight(ctx, admin, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("preflight: %+v", *p)
		if p.SystemRoot == "" || p.Version == "" {
			t.Fatalf("Samba serves SystemRoot and CurrentVersion: %+v", p)
		}
		// Samba has no Control\Lsa and no Policies\System: unknown, not errors.
		if p.ForceGuest != nil || p.LmCompatibilityLevel != nil || p.LocalAccountTokenFilterPolicy != nil {
			t.Fatalf("values Samba does not have were reported: %+v", p)
		}
		for _, want := range []string{keyLsa + `\forceguest`, keyLsa + `\LmCompatibilityLevel`, keyPolicySystem + `\LocalAccountTokenFilterPolicy`} {
			if !slices.Contains(p.Unknown, want) {
				t.Errorf("Unknown lacks %s: %v", want, p.Unknown)
			}
		}
	})

	t.Run("every RPC level binds over the pipe", func(t *testing.T) {
		for _, lvl := range []rpcauth.Level{rpcauth.Privacy, rpcauth.Integrity, rpcauth.None} {
			l := fastLauncher(TransportPipe)
			l.Level = lvl
			p, err := l.preflight(ctx, admin, nil)
			if err != nil || p.SystemRoot == "" {
				t.Fatalf("%v: %+v, %v", lvl, p, err)
			}
		}
	})

	t.Run("parameter keys written and removed through the journal", func(t *testing.T) {
		spec := paramSpec(`C:\Windows\Temp\x.exe`)
		j := &memJournal{}
		cli, conn, err := l.winregOverPipe(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		changes, err := l.writeParams(ctx, cli, admin, spec, j)
		conn.close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		path := paramKeyPath(spec)
		if !keyExists(ctx, t, l, admin, path) {
			t.Fatalf("%s not created", path)
		}
		// The values are there, as REG_SZ.
		cli, conn, err = l.winregOverPipe(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		hklm, _ := openHKLM(ctx, cli, maximumAllowed)
		r := &regReader{cli: cli, hklm: hklm, open: map[string]*winreg.Key{}}
		got, err := r.str(ctx, path, "Note")
		conn.close(ctx)
		if err != nil || got != "ünïcode value" {
			t.Fatalf("Note = %q, %v", got, err)
		}
		// Every level we created is journaled, deepest last.
		open := j.pending()
		if len(open) == 0 || len(open) != len(changes) || open[len(open)-1].Name != path {
			t.Fatalf("journal %v, changes %v", open, changes)
		}
		// Undo from the journal, newest first, as a later process would.
		for i := len(open) - 1; i >= 0; i-- {
			if err := l.undo(ctx, admin, open[i]); err != nil {
				t.Fatalf("undo %v: %v", open[i], err)
			}
			_ = j.Resolve(ctx, open[i])
		}
		for _, c := range open {
			if keyExists(ctx, t, l, admin, c.Name) {
				t.Fatalf("%s still exists after undo", c.Name)
			}
		}
	})

	t.Run("non-admin gets access denied on writes", func(t *testing.T) {
		user := labTarget(ctx, t, tgt, tgt.User)
		cli, conn, err := l.winregOverPipe(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.close(ctx)
		_, err = l.writeParams(ctx, cli, user, paramSpec(`C:\Windows\Temp\x.exe`), nil)
		if !errors.Is(err, ErrorAccessDenied) {
			t.Fatalf("err = %v, want ERROR_ACCESS_DENIED", err)
		}
		if le := l.failure("write parameters", conn.endpoint, err); !errors.Is(le, deploy.ErrAccessDenied) {
			t.Fatalf("classified as %v", le)
		}
	})

	t.Run("scm open and query", func(t *testing.T) {
		cli, conn, err := l.dialSCM(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.close(ctx)
		m, err := openSCM(ctx, cli, scManagerConnect)
		if err != nil {
			t.Fatal(err)
		}
		defer m.close(ctx)
		h, err := m.open(ctx, remoteRegistryService, serviceQueryStatus|serviceQueryConfig)
		if err != nil {
			t.Fatalf("open %s: %v", remoteRegistryService, err)
		}
		defer m.closeService(ctx, h)
		st, err := m.status(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := m.config(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Samba %s: state %v, start type %v, path %q", remoteRegistryService, State(st.CurrentState), StartType(cfg.StartType), cfg.BinaryPathName)
		if _, err := m.open(ctx, "lc-no-such-service", serviceQueryStatus); !errors.Is(err, ErrorServiceDoesNotExist) {
			t.Fatalf("missing service: %v", err)
		}
	})

	t.Run("CreateService is not supported over the pipe; parameters cleaned up", func(t *testing.T) {
		spec := paramSpec(`C:\Windows\Temp\x.exe`)
		j := &memJournal{}
		_, err := l.launchTarget(ctx, admin, spec, j)
		le := expectLaunchError(t, err, deploy.ErrLaunchUnsupported)
		if le.Step != "create service" || le.Diagnosis.Code != "scm-not-supported" {
			t.Fatalf("%+v", le)
		}
		if st, ok := rpcauth.FaultStatus(err); !ok || st != ncaOpRngError {
			t.Fatalf("status %x %v, want nca_op_rng_error", st, ok)
		}
		if keyExists(ctx, t, l, admin, `SOFTWARE\`+spec.Vendor) {
			t.Fatal("parameter keys left after the failed launch")
		}
		if len(j.pending()) != 0 {
			t.Fatalf("journal still open: %v", j.pending())
		}
	})

	t.Run("cancelled while writing parameters leaves no key", func(t *testing.T) {
		spec := paramSpec(`C:\Windows\Temp\x.exe`)
		c2, cancel2 := context.WithCancel(ctx)
		defer cancel2()
		j := &cancelOnRecord{cancel: cancel2, on: ChangeRegistryKey}
		_, err := l.launchTarget(c2, admin, spec, j)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if keyExists(ctx, t, l, admin, `SOFTWARE\`+spec.Vendor) {
			t.Fatal("parameter key left after cancellation")
		}
		// The intent stays journaled (the abandoned call might still be
		// carried out); undoing it is a success.
		if p := j.pending(); len(p) != 1 || p[0].Kind != ChangeRegistryKey {
			t.Fatalf("journal open %v resolved %v", p, j.resolved)
		}
		undoPending(ctx, t, l, admin, &j.memJournal)
	})

	t.Run("cancelled inside BaseRegCreateKey", func(t *testing.T) {
		// The first key is journaled, then smbd is frozen before the
		// create goes out; once the request waits in smbd's socket the
		// launch is cancelled and smbd let go, so the server creates the
		// key after the client gave up.
		spec := paramSpec(`C:\Windows\x.exe`)
		c2, cancel2 := context.WithCancel(ctx)
		defer cancel2()
		j := &freezeOnRecord{tgt: tgt, cancel: cancel2, done: make(chan error, 1)}
		_, err := l.launchTarget(c2, admin, spec, j)
		if ferr := <-j.done; ferr != nil {
			t.Fatalf("freeze: %v", ferr)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		p := j.pending()
		if len(p) != 1 || p[0].Kind != ChangeRegistryKey || p[0].Name != `SOFTWARE\`+spec.Vendor {
			t.Fatalf("journal open %v resolved %v", p, j.resolved)
		}
		t.Logf("right after the failed launch the key exists: %v", keyExists(ctx, t, l, admin, p[0].Name))
		undoPending(ctx, t, l, admin, &j.memJournal)
		if keyExists(ctx, t, l, admin, p[0].Name) {
			t.Fatal("parameter key left after the journal's undo")
		}
	})

	t.Run("fallback to TCP finds no endpoint mapper on Samba", func(t *testing.T) {
		l := fastLauncher() // pipe, then TCP
		c2, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := l.launchTarget(c2, admin, deploy.LaunchSpec{Path: `C:\Windows\Temp\x.exe`}, nil)
		le := expectLaunchError(t, err, deploy.ErrUnreachable)
		if errors.Is(err, deploy.ErrLaunchUnsupported) {
			t.Fatal("the error matches two kinds")
		}
		if !strings.Contains(le.Diagnosis.Summary, "does not implement create service") {
			t.Fatalf("the diagnosis forgets the pipe attempt: %q", le.Diagnosis.Summary)
		}
		t.Logf("pipe then TCP on plain Samba: %v", err)
	})
}

// freezeOnRecord freezes the target's smbd when the first registry key is
// journaled, and cancels once the next request (the create) waits in
// smbd's socket, then thaws smbd. done receives the outcome.
type freezeOnRecord struct {
	memJournal
	tgt    *testlab.Target
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (f *freezeOnRecord) Record(ctx context.Context, c Change) error {
	err := f.memJournal.Record(ctx, c)
	if c.Kind != ChangeRegistryKey {
		return err
	}
	f.once.Do(func() {
		thaw, ferr := f.tgt.FreezeSMB()
		if ferr != nil {
			f.done <- ferr
			f.cancel()
			return
		}
		go func() {
			wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			werr := f.tgt.WaitSMBQueued(wctx)
			f.cancel()
			f.done <- errors.Join(werr, thaw())
		}()
	})
	return err
}

// labWinemu builds winemu and runs it in tgt's namespace with Root =
// ADMIN$ and the admin account (or, with asAdmin false, the same account
// without administrator rights).
func labWinemu(ctx context.Context, t *testing.T, tgt *testlab.Target, asAdmin bool, extra ...string) {
	t.Helper()
	bin := buildOnce(t, "winemu", "../internal/winemu/cmd/winemu")
	t.Setenv("WINEMU_PASSWORD", tgt.Admin.Password)
	args := append([]string{"-listen", tgt.Addr.String(), "-root", tgt.AdminDir,
		"-user", tgt.Admin.User, "-name", tgt.NetBIOSName, "-workgroup", tgt.Workgroup, "-admin=" + strconv.FormatBool(asAdmin)}, extra...)
	p, err := tgt.Start(ctx, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	waitListening(t, net.JoinHostPort(tgt.Addr.String(), "135"), p)
}

func waitListening(t *testing.T, addr string, p *testlab.Process) {
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

var built = map[string]string{}

func buildOnce(t *testing.T, name, pkg string) string {
	t.Helper()
	if b, ok := built[name]; ok {
		return b
	}
	dir, err := os.MkdirTemp("", "remotereg-bin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[name] = bin
	return bin
}

// copyApplet puts the example applet into the target's ADMIN$\Temp over
// the admin's SMB session and returns its Windows path.
func copyApplet(ctx context.Context, t *testing.T, tgt *testlab.Target) string {
	t.Helper()
	bin := buildOnce(t, "applet", "../examples/applet")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := smbconn.Dial(ctx, tgt.Addr.String(), smbconn.Auth{User: tgt.Admin.User, Password: tgt.Admin.Password}, smbconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sh, err := s.Mount(ctx, "ADMIN$")
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Umount()
	_ = sh.Mkdir("Temp", 0o755)
	name := fmt.Sprintf("lcapplet-%d.exe", time.Now().UnixNano()%1e6)
	if err := sh.WriteFile(`Temp\`+name, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return `C:\Windows\Temp\` + name
}

// appletPIDs returns the processes whose command line contains marker.
func appletPIDs(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestLabWinemuEndToEnd launches the example applet on a lab target where
// Samba serves the pipes and winemu serves the SCM over TCP (port 135 and
// a dynamic port), as a Windows host that refuses service creation over
// the pipe would look: the launcher writes the parameters through Samba's
// winreg, falls back from the pipe to TCP through the endpoint mapper,
// and the applet checks in with a console listening on the lab bridge.
func TestLabWinemuEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	labWinemu(ctx, t, tgt, true)
	admin := labTarget(ctx, t, tgt, tgt.Admin)
	appletPath := copyApplet(ctx, t, tgt)

	console := &checkin.Server{Addr: net.JoinHostPort(lab.HostAddr.String(), "0")}
	if err := console.Listen(); err != nil {
		t.Fatal(err)
	}
	defer console.Close()

	t.Run("launch, check in, stop", func(t *testing.T) {
		pend, err := console.Expect("lab-session", "")
		if err != nil {
			t.Fatal(err)
		}
		spec := paramSpec(appletPath)
		spec.Args = pend.Ticket().Args()
		j := &memJournal{}
		l := fastLauncher()
		h, err := l.launchTarget(ctx, admin, spec, j)
		if err != nil {
			t.Fatalf("launch: %v", err)
		}
		if h.Transport() != TransportTCP {
			t.Fatalf("transport %v, want the TCP fallback", h.Transport())
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		conn, err := pend.Wait(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("applet did not check in: %v", err)
		}
		defer conn.Close()
		// The applet runs in the target's namespace, not ours.
		pids := appletPIDs(filepath.Base(strings.ReplaceAll(appletPath, `\`, "/")))
		if len(pids) != 1 {
			t.Fatalf("applet processes: %v", pids)
		}
		appNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pids[0]))
		selfNS, _ := os.Readlink("/proc/self/ns/net")
		tgtNS := ""
		if out, err := tgt.Command(ctx, "readlink", "/proc/self/ns/net").Output(); err == nil {
			tgtNS = strings.TrimSpace(string(out))
		}
		if appNS == "" || appNS == selfNS || appNS != tgtNS {
			t.Fatalf("applet netns %q, target %q, test %q", appNS, tgtNS, selfNS)
		}
		if ok, err := h.Running(ctx); err != nil || !ok {
			t.Fatalf("Running = %v, %v", ok, err)
		}
		kinds := map[ChangeKind]int{}
		for _, c := range j.pending() {
			kinds[c.Kind]++
		}
		if kinds[ChangeService] != 1 || kinds[ChangeRegistryKey] == 0 {
			t.Fatalf("journal: %v", j.pending())
		}
		if err := h.Stop(ctx); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if len(appletPIDs(filepath.Base(strings.ReplaceAll(appletPath, `\`, "/")))) != 0 {
			t.Fatal("applet still running after Stop")
		}
		if ok, err := h.Running(ctx); err != nil || ok {
			t.Fatalf("Running after stop = %v, %v", ok, err)
		}
		if !scmGone(ctx, t, l, admin, h.Service()) {
			t.Fatalf("service %s still exists", h.Service())
		}
		if keyExists(ctx, t, l, admin, paramKeyPath(spec)) {
			t.Fatal("parameter key left")
		}
		if len(j.pending()) != 0 {
			t.Fatalf("journal still open: %v", j.pending())
		}
	})

	t.Run("existing service name", func(t *testing.T) {
		first := fastLauncher(TransportTCP)
		first.KeepService = true
		first.Rand = strings.NewReader("\x01\x02\x03\x04")
		// A well-formed ticket for a console that is not there: the applet
		// reports running to the SCM, as a service must for StartService to
		// succeed, and then fails its check-in.
		ticket := checkin.Ticket{Addr: "127.0.0.1:1", Fingerprint: strings.Repeat("ab", 32), Token: "dG9rZW4"}
		h, err := first.launchTarget(ctx, admin, deploy.LaunchSpec{Path: appletPath, Args: ticket.Args(), ServicePrefix: "lc-dup-"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop(ctx)
		second := fastLauncher(TransportTCP)
		second.Rand = strings.NewReader("\x01\x02\x03\x04")
		_, err = second.launchTarget(ctx, admin, deploy.LaunchSpec{Path: appletPath, ServicePrefix: "lc-dup-"}, nil)
		expectLaunchError(t, err, deploy.ErrServiceExists)
	})
}

// scmGone reports whether service name no longer exists on the SCM over
// TCP.
func scmGone(ctx context.Context, t *testing.T, l *Launcher, tg target, name string) bool {
	t.Helper()
	cli, conn, err := l.svcctlOver(ctx, tg, TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.close(ctx)
	m, err := openSCM(ctx, cli, scManagerConnect)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close(ctx)
	h, err := m.open(ctx, name, serviceQueryStatus)
	if err == nil {
		m.closeService(ctx, h)
		return false
	}
	return errors.Is(err, ErrorServiceDoesNotExist)
}

// TestLabWinemuFailures covers the TCP path's failures in a namespace:
// a non-administrator, a hung endpoint mapper, and cancellation.
func TestLabWinemuFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {}, {}, {}}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("start timeout (applet not service-aware)", func(t *testing.T) {
		tgt := lab.Targets[2]
		labWinemu(ctx, t, tgt, true, "-fault", "did-not-start")
		tg := labTarget(ctx, t, tgt, tgt.Admin)
		path := copyApplet(ctx, t, tgt)
		j := &memJournal{}
		_, err := fastLauncher(TransportTCP).launchTarget(ctx, tg, deploy.LaunchSpec{Path: path}, j)
		le := expectLaunchError(t, err, deploy.ErrNotServiceAware)
		if le.Diagnosis.Code != "applet-not-service-aware" {
			t.Fatalf("%+v", le)
		}
		if len(j.pending()) != 0 || len(j.resolved) != 1 {
			t.Fatalf("service not cleaned up: journal open %v resolved %v", j.pending(), j.resolved)
		}
	})

	t.Run("tampered sealed response over TCP", func(t *testing.T) {
		tgt := lab.Targets[3]
		labWinemu(ctx, t, tgt, true, "-fault", "tamper=15:6:3:1:sealed")
		tg := labTarget(ctx, t, tgt, tgt.Admin)
		_, err := fastLauncher(TransportTCP).launchTarget(ctx, tg, deploy.LaunchSpec{Path: `C:\Windows\Temp\x.exe`}, nil)
		if !errors.Is(err, rpcauth.ErrIntegrity) {
			t.Fatalf("err = %v, want rpcauth.ErrIntegrity", err)
		}
		t.Logf("%v", err)
	})

	t.Run("access denied (winemu account without admin rights)", func(t *testing.T) {
		tgt := lab.Targets[0]
		labWinemu(ctx, t, tgt, false)
		tg := labTarget(ctx, t, tgt, tgt.Admin)
		_, err := fastLauncher(TransportTCP).launchTarget(ctx, tg, deploy.LaunchSpec{Path: `C:\Windows\Temp\x.exe`}, nil)
		le := expectLaunchError(t, err, deploy.ErrAccessDenied)
		if le.Diagnosis.Code != "access-denied" {
			t.Fatalf("%+v", le)
		}
	})

	// A black hole on the endpoint mapper's port: it accepts and never
	// answers.
	tgt := lab.Targets[1]
	hole, err := tgt.Start(ctx, "python3", "-c",
		"import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"+
			"s.bind(('"+tgt.Addr.String()+"',135))\ns.listen(16)\nc=[]\nwhile True:\n c.append(s.accept())\n")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Stop()
	waitListening(t, net.JoinHostPort(tgt.Addr.String(), "135"), hole)
	tg := labTarget(ctx, t, tgt, tgt.Admin)

	t.Run("hung endpoint fails within the deadline and names the port", func(t *testing.T) {
		c2, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		_, err := fastLauncher(TransportTCP).launchTarget(c2, tg, deploy.LaunchSpec{Path: `C:\Windows\Temp\x.exe`}, nil)
		took := time.Since(start)
		le := expectLaunchError(t, err, deploy.ErrTimeout)
		if took > 5*time.Second {
			t.Fatalf("took %v with a 3 s deadline", took)
		}
		if !strings.Contains(le.Diagnosis.Summary, net.JoinHostPort(tgt.Addr.String(), "135")) {
			t.Fatalf("diagnosis does not name the port: %q", le.Diagnosis.Summary)
		}
		t.Logf("%v (after %v)", err, took.Round(time.Millisecond))
	})

	t.Run("cancellation", func(t *testing.T) {
		c2, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := fastLauncher(TransportTCP).launchTarget(c2, tg, deploy.LaunchSpec{Path: `C:\Windows\Temp\x.exe`}, nil)
			done <- err
		}()
		// Cancel once the black hole holds the launcher's connection.
		established := func() bool {
			out, _ := tgt.Command(ctx, "ss", "-Htn", "state", "established", "sport", "= :135").Output()
			return strings.TrimSpace(string(out)) != ""
		}
		for deadline := time.Now().Add(10 * time.Second); !established(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the launcher never connected to the endpoint mapper")
			}
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Launch did not return after cancel")
		}
	})
}

// TestLabGrantEndToEnd is the whole path through the public API on a lab
// target with winemu: adauth proves the administrator and lends its
// session, deploy.Copy puts the example applet under ADMIN$ (journaled),
// Launch (deploy.Launcher) writes the parameters and starts the applet as
// a service through the TCP fallback, the applet checks in, and cleanup
// runs twice: Handle.Stop, and a journal reloaded from disk by "another
// process" after a launch that was never stopped.
func TestLabGrantEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	labWinemu(ctx, t, tgt, true)

	creds, err := adauth.Parse(`.\`+tgt.Admin.User, tgt.Admin.Password)
	if err != nil {
		t.Fatal(err)
	}
	g, err := (&adauth.SMBAuthenticator{}).Authenticate(ctx, tgt.Addr.String(), creds)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	defer g.Close()

	applet, err := deploy.AppletFromFile("lcapplet.exe", "test", buildOnce(t, "applet", "../examples/applet"))
	if err != nil {
		t.Fatal(err)
	}
	jpath := filepath.Join(t.TempDir(), "journal.json")
	j, err := deploy.OpenJournal(jpath)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := deploy.Copy(ctx, g, applet, deploy.CopyOptions{Journal: j})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	t.Logf("copied to %s (%s)", cp.LocalPath, cp.Took)

	console := &checkin.Server{Addr: net.JoinHostPort(lab.HostAddr.String(), "0")}
	if err := console.Listen(); err != nil {
		t.Fatal(err)
	}
	defer console.Close()

	var launcher deploy.Launcher = fastLauncher()
	l := launcher.(*Launcher)
	undoers := deploy.Undoers{}
	for k, f := range deploy.FileUndoers(g) {
		undoers[k] = f
	}
	for k, f := range l.Undoers(g) {
		undoers[k] = f
	}

	t.Run("launch and stop", func(t *testing.T) {
		pend, err := console.Expect("grant-session", "")
		if err != nil {
			t.Fatal(err)
		}
		spec := paramSpec(cp.LocalPath)
		spec.Args = pend.Ticket().Args()
		before := j.Len()
		h, err := launcher.Launch(ctx, &deploy.Target{Session: "grant-session", Addr: g.Addr, Grant: g, Journal: j}, spec)
		if err != nil {
			t.Fatalf("launch: %v", err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		conn, err := pend.Wait(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("applet did not check in: %v", err)
		}
		defer conn.Close()
		if j.Len() <= before {
			t.Fatal("launch recorded nothing in the journal")
		}
		// The process runs in the target's namespace.
		pids := appletPIDs(pend.Ticket().Token)
		if len(pids) != 1 {
			t.Fatalf("applet processes: %v", pids)
		}
		appNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pids[0]))
		out, err := tgt.Command(ctx, "readlink", "/proc/self/ns/net").Output()
		if err != nil || appNS == "" || appNS != strings.TrimSpace(string(out)) {
			t.Fatalf("applet netns %q, target %q (%v)", appNS, out, err)
		}
		name := h.(*Handle).Service()
		if err := h.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if j.Len() != before {
			t.Fatalf("journal after Stop: %v", j.Artifacts())
		}
		if len(appletPIDs(pend.Ticket().Token)) != 0 {
			t.Fatal("applet still running after Stop")
		}
		if !scmGone(ctx, t, l, targetFromGrant(g), name) {
			t.Fatalf("service %s still exists after Stop", name)
		}
	})

	t.Run("a later process cleans up from the journal file", func(t *testing.T) {
		l2 := fastLauncher()
		l2.KeepService = true
		spec := paramSpec(cp.LocalPath)
		spec.Args = []string{"-console", "127.0.0.1:1", "-console-fingerprint", strings.Repeat("0", 64), "-token", "x"}
		h, err := l2.Launch(ctx, &deploy.Target{Addr: g.Addr, Grant: g, Journal: j}, spec)
		if err != nil {
			t.Fatalf("launch: %v", err)
		}
		hh := h.(*Handle)
		name := hh.Service()
		// No Stop: this console "crashes" (its connections close, which
		// releases its service handle). Another loads the journal.
		hh.mu.Lock()
		hh.dropConn(ctx)
		hh.mu.Unlock()
		j2, err := deploy.OpenJournal(jpath)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, a := range j2.Artifacts() {
			kinds[a.Kind]++
		}
		if kinds[string(ChangeService)] != 1 || kinds[string(ChangeRegistryKey)] == 0 || kinds[deploy.KindFile] == 0 {
			t.Fatalf("journal on disk: %v", j2.Artifacts())
		}
		rep := j2.Undo(ctx, undoers)
		if !rep.OK() {
			t.Fatalf("undo: %v (skipped %v)", rep.Err(), rep.Skipped)
		}
		if j2.Len() != 0 {
			t.Fatalf("left: %v", j2.Artifacts())
		}
		if !scmGone(ctx, t, l, targetFromGrant(g), name) {
			t.Fatalf("service %s survived the journal undo", name)
		}
		if keyExists(ctx, t, l, targetFromGrant(g), `SOFTWARE\`+spec.Vendor) {
			t.Fatal("parameter keys survived the journal undo")
		}
		if _, err := os.Stat(filepath.Join(tgt.AdminDir, "Temp", "lanconnect", applet.Name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("applet file: %v", err)
		}
	})
}
