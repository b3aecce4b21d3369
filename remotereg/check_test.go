package remotereg

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// opLog records the RPC operations winemu served (its "rpc" log lines).
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *opLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *opLog) WithGroup(string) slog.Handler            { return l }
func (l *opLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "rpc" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "op" {
			l.mu.Lock()
			l.ops = append(l.ops, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *opLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops := l.ops
	l.ops = nil
	return ops
}

// readOnlyOps are the svcctl operations a check may call.
var readOnlyOps = []string{"ept_map", "ROpenSCManagerW", "ROpenServiceW", "RQueryServiceStatus", "RQueryServiceConfigW", "RCloseServiceHandle"}

// TestCheckLeavesRemoteRegistryAlone runs Check's SCM part over real
// svcctl (winemu over TCP) with a "RemoteRegistry" service in each
// state: a stopped or disabled service is reported as such, \pipe\winreg
// is not even opened (on Windows that would start the service), and no
// call but opens, queries and closes reaches the SCM; a running one is
// reported and its pipe opened for the registry values.
func TestCheckLeavesRemoteRegistryAlone(t *testing.T) {
	ops := &opLog{}
	e := startEmu(t, func(s *winemu.Server) { s.Logger = slog.New(ops) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := tcpLauncher()
	setState := func(t *testing.T, start StartType, run bool) {
		t.Helper()
		tg := e.target(e.admin)
		cli, conn, err := l.svcctlOver(ctx, tg, TransportTCP)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.close(ctx)
		m, err := openSCM(ctx, cli, scManagerConnect|scManagerCreateService)
		if err != nil {
			t.Fatal(err)
		}
		defer m.close(ctx)
		const access = serviceQueryStatus | serviceChangeConfig | serviceStart | serviceStop | accessDelete
		h, err := m.open(ctx, remoteRegistryService, access)
		if err != nil {
			c, err := m.create(ctx, remoteRegistryService, "Remote Registry", `"`+e.applet+`"`, start)
			if err != nil {
				t.Fatal(err)
			}
			m.closeService(ctx, c)
			if h, err = m.open(ctx, remoteRegistryService, access); err != nil {
				t.Fatal(err)
			}
		}
		defer m.closeService(ctx, h)
		if err := m.setStartType(ctx, h, start); err != nil {
			t.Fatal(err)
		}
		if run {
			if err := m.start(ctx, h); err != nil {
				t.Fatal(err)
			}
			if _, err := m.waitState(ctx, h, StateRunning, l.backoff()); err != nil {
				t.Fatal(err)
			}
		}
	}
	info := func(t *testing.T) winemu.ServiceInfo {
		for _, s := range e.srv.SCM().Services() {
			if s.Name == remoteRegistryService {
				return s
			}
		}
		t.Fatal("RemoteRegistry vanished")
		return winemu.ServiceInfo{}
	}
	errNoRegistry := errors.New("test: winreg pipe opened, then broke")
	for _, c := range []struct {
		name  string
		start StartType
		run   bool
		want  string
		pipe  int // winreg opens expected
	}{
		{"disabled", StartDisabled, false, deploy.ServiceDisabled, 0},
		{"manual, stopped", StartDemand, false, deploy.ServiceStopped, 0},
		{"running", StartDemand, true, deploy.ServiceRunning, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			setState(t, c.start, c.run)
			before := info(t)
			ops.take()
			tg := e.target(e.admin)
			var pipes []string
			tg.OpenPipe = func(_ context.Context, name string) (net.Conn, error) {
				pipes = append(pipes, name)
				if name != "winreg" {
					return nil, &smbconn.Error{Op: "open pipe " + name, Err: smbconn.StatusObjectNameNotFound}
				}
				return nil, errNoRegistry
			}
			p, err := l.check(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			if p.RemoteRegistry != c.want || p.Settings != nil {
				t.Fatalf("probe %+v, want Remote Registry %q and no settings", p, c.want)
			}
			if n := len(slices.DeleteFunc(slices.Clone(pipes), func(s string) bool { return s != "winreg" })); n != c.pipe {
				t.Fatalf("winreg opened %d times, want %d (pipes %v)", n, c.pipe, pipes)
			}
			got := ops.take()
			for _, op := range got {
				if !slices.Contains(readOnlyOps, op) {
					t.Errorf("the check called %s (all calls: %v)", op, got)
				}
			}
			if !slices.Contains(got, "RQueryServiceStatus") {
				t.Errorf("no status query among %v", got)
			}
			after := info(t)
			if after.State != before.State || after.StartType != before.StartType || after.PID != before.PID {
				t.Fatalf("service changed: %+v -> %+v", before, after)
			}
		})
	}
}

// TestCheckNotAdmin: an account that may not create services gets the
// access-denied launch error Launch gives, and nothing is created.
func TestCheckNotAdmin(t *testing.T) {
	ops := &opLog{}
	e := startEmu(t, func(s *winemu.Server) { s.Logger = slog.New(ops) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := tcpLauncher()
	_, err := l.check(ctx, e.target(e.user))
	if !errors.Is(err, deploy.ErrAccessDenied) {
		t.Fatalf("err = %v, want access denied", err)
	}
	var le *deploy.LaunchError
	if !errors.As(err, &le) || le.Diagnosis.IsZero() {
		t.Fatalf("no diagnosis: %#v", err)
	}
	for _, op := range ops.take() {
		if !slices.Contains(readOnlyOps, op) {
			t.Errorf("the check called %s", op)
		}
	}
	if s := e.srv.SCM().Services(); len(s) != 0 {
		t.Fatalf("services: %+v", s)
	}
}
