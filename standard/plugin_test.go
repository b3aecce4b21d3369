package standard_test

// A vendor's own launcher, written against the public API alone: it
// records an artifact of its own kind in the target's journal, undoes it
// through deploy.Undoer, and is configured through standard.Options
// (issue 21 §3).

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
	"github.com/lanconnect/lanconnect/wmi"
)

// ruleKind is the vendor's artifact kind: a firewall rule its launcher
// opens for the applet.
const ruleKind = "acme.firewall-rule"

// acmeLauncher "launches" by opening a firewall rule (recorded before it
// is relied on) and returns a handle. Its rules live in a map that stands
// for the target.
type acmeLauncher struct {
	mu     sync.Mutex
	rules  map[string]bool // open rules, by name, as the target has them
	undone []string
	grants []*adauth.Grant // the grants its Undoers were made for
}

func (l *acmeLauncher) Name() string { return "acme" }

func (l *acmeLauncher) Launch(ctx context.Context, t *deploy.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	if err := spec.Validate(); err != nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: "validate", Kind: deploy.ErrBadSpec, Err: err}
	}
	name := "acme-applet-" + t.Session
	if t.Journal != nil {
		data, _ := json.Marshal(map[string]string{"port": "4711"})
		if _, err := t.Journal.Record(ctx, deploy.Artifact{Kind: ruleKind, Addr: t.Grant.Addr, Name: name, Data: data, Note: "inbound rule for the applet"}); err != nil {
			return nil, &deploy.LaunchError{Launcher: l.Name(), Step: "journal", Err: err}
		}
	}
	l.mu.Lock()
	l.rules[name] = true
	l.mu.Unlock()
	return acmeHandle{}, nil
}

// Undoers implements deploy.Undoer: it closes the rules it opened on g's
// computer.
func (l *acmeLauncher) Undoers(g *adauth.Grant) deploy.Undoers {
	l.mu.Lock()
	l.grants = append(l.grants, g)
	l.mu.Unlock()
	return deploy.Undoers{ruleKind: func(_ context.Context, a deploy.Artifact) error {
		if g == nil {
			return deploy.ErrNoGrant
		}
		if !strings.EqualFold(a.Addr, g.Addr) {
			return deploy.ErrNotMine
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.rules, a.Name) // a rule that is gone counts as undone
		l.undone = append(l.undone, a.Name)
		return nil
	}}
}

func (l *acmeLauncher) open() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for n := range l.rules {
		out = append(out, n)
	}
	return out
}

type acmeHandle struct{}

func (acmeHandle) Running(context.Context) (bool, error) { return true, nil }
func (acmeHandle) Stop(context.Context) error            { return nil }
func (acmeHandle) PID() uint32                           { return 0 }

// acmeAuth is any adauth.Authenticator: it proves nothing and returns a
// grant without an SMB session.
type acmeAuth struct{}

func (acmeAuth) Authenticate(_ context.Context, host string, cr adauth.Credentials) (*adauth.Grant, error) {
	return &adauth.Grant{Addr: host, Credentials: cr}, nil
}

// pathDeployer "copies" nothing and records nothing.
type pathDeployer struct{}

func (pathDeployer) Deploy(_ context.Context, t *deploy.Target, _ func(done, total int64)) (string, error) {
	return `C:\Windows\Temp\acme-` + t.Session + `.exe`, nil
}

// closedPort returns a loopback TCP port that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// acmeConfig applies Options with the vendor's launcher after WMI (whose
// endpoint mapper port is closed, so it falls back to acme), the vendor's
// authenticator, its kind in the scope, and journals in dir ("" in
// memory). The deployer and the readiness are replaced after Apply: the
// fake grant has no SMB session to copy over.
func acmeConfig(t *testing.T, l *acmeLauncher, dir string) (session.Config, standard.Options) {
	t.Helper()
	opts := standard.Options{
		Applet: applet, Method: standard.MethodWMI,
		WMI:           &wmi.Launcher{EPMPort: closedPort(t)},
		Authenticator: acmeAuth{},
		Launchers:     []deploy.Launcher{l},
		ExtraScope:    deploy.Scope{ruleKind: func(a deploy.Artifact) error { return nil }},
		JournalDir:    dir,
	}
	creds, err := adauth.Parse(`.\admin`, "pw")
	if err != nil {
		t.Fatal(err)
	}
	cfg := session.Config{Credentials: creds}
	if err := standard.Apply(&cfg, opts); err != nil {
		t.Fatal(err)
	}
	if names(cfg.Launchers)[len(cfg.Launchers)-1] != "acme" {
		t.Fatalf("launchers %v: the extra launcher is not last", names(cfg.Launchers))
	}
	cfg.Preflight = nil // remotereg's preflight would dial the target
	cfg.Deployer = pathDeployer{}
	cfg.Readiness = func(context.Context, *deploy.Target, deploy.Handle) error { return nil }
	cfg.Timeouts = session.Timeouts{Launch: 10 * time.Second, Cleanup: 10 * time.Second}
	return cfg, opts
}

var target1 = discovery.Host{Name: "PC1", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}

func TestCustomLauncherUndoneBySession(t *testing.T) {
	l := &acmeLauncher{rules: map[string]bool{}}
	cfg, _ := acmeConfig(t, l, "")
	c, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.Connect(context.Background(), target1)
	r, err := s.Wait(context.Background())
	if err != nil || r.State != session.Running || r.Method != "acme" {
		t.Fatalf("state %v via %q: %v (attempts %+v)", r.State, r.Method, err, r.Attempts)
	}
	if len(r.Attempts) != 1 || r.Attempts[0].Launcher != "wmi" || !errors.Is(r.Attempts[0].Err, deploy.ErrUnreachable) {
		t.Fatalf("attempts %+v: WMI should have failed as unreachable first", r.Attempts)
	}
	rule := "acme-applet-" + s.ID()
	if open := l.open(); !slices.Equal(open, []string{rule}) {
		t.Fatalf("rules open while running: %v", open)
	}
	cl, err := s.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !cl.Clean() || !slices.Contains(cl.Undone, ruleKind+" "+rule) {
		t.Fatalf("cleanup %+v: the vendor's artifact is not reported undone", cl)
	}
	if open := l.open(); len(open) != 0 || !slices.Equal(l.undone, []string{rule}) {
		t.Fatalf("rules still open %v, undone %v", open, l.undone)
	}
	if len(l.grants) == 0 || l.grants[0] == nil || l.grants[0].Addr != "127.0.0.1" {
		t.Fatalf("Undoers got grants %v, want the session's", l.grants)
	}
}

// A session kept running leaves its journal file in JournalDir; a console
// that restarts reloads it and undoes it with Options.Undoers, within
// Options.Scope.
func TestPersistedJournalUndoneWithOptionsUndoers(t *testing.T) {
	dir := t.TempDir()
	l := &acmeLauncher{rules: map[string]bool{}}
	cfg, opts := acmeConfig(t, l, dir)
	c, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.Connect(context.Background(), target1)
	if r, err := s.Wait(context.Background()); err != nil || r.State != session.Running {
		t.Fatalf("state %v: %v", r.State, err)
	}
	cl, err := s.CloseWith(context.Background(), session.CloseOptions{Keep: true})
	if err != nil || !cl.Kept || len(cl.Undone) != 0 {
		t.Fatalf("kept session's cleanup %+v, %v", cl, err)
	}
	path := filepath.Join(dir, s.ID()+".json")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("journal of the kept session: %v", err)
	}
	rule := "acme-applet-" + s.ID()

	// The console restarts.
	j, err := deploy.OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	arts := j.Artifacts()
	if len(arts) != 1 || arts[0].Kind != ruleKind || arts[0].Name != rule || arts[0].Addr != "127.0.0.1" {
		t.Fatalf("reloaded journal %+v", arts)
	}
	scope, err := opts.Scope()
	if err != nil {
		t.Fatal(err)
	}
	g, err := acmeAuth{}.Authenticate(context.Background(), arts[0].Addr, cfg.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := j.UndoWithin(context.Background(), opts.Undoers(g), scope)
	if err != nil || !rep.OK() || len(rep.Undone) != 1 || j.Len() != 0 {
		t.Fatalf("undo: %+v, %v, %d left", rep, err, j.Len())
	}
	if open := l.open(); len(open) != 0 {
		t.Fatalf("rules still open after the recovery: %v", open)
	}
}
