package session_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/session/checkin"
)

// gate blocks a fake step until it is opened or ctx ends.
type gate struct {
	mu     sync.Mutex
	closed map[string]chan struct{}
}

func (g *gate) block(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed == nil {
		g.closed = map[string]chan struct{}{}
	}
	g.closed[name] = make(chan struct{})
}

func (g *gate) wait(ctx context.Context, name string) error {
	g.mu.Lock()
	ch := g.closed[name]
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fakeAuth accepts "admin" with password "good"; "user" is not admin;
// anything else is a logon failure.
type fakeAuth struct {
	g        *gate
	calls    atomic.Int32
	inflight atomic.Int32
	peak     atomic.Int32
	local    bool
	adminPW  string // "good" when empty
	// identity, when set, is the name the fake computer answers under:
	// an expected name (adauth.WithExpectedName) that differs fails as
	// adauth.SMBAuthenticator does, before credentials are checked.
	identity string
	// unreachable addresses fail as adauth's dial errors do.
	unreachable map[string]bool

	mu    sync.Mutex
	seen  []string // the host of each call
	names []string // the expected name of each call
	log   []string // "start USER/PW" and "end USER/PW", in order
}

func (a *fakeAuth) calledWith() (hosts, names []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...), append([]string(nil), a.names...)
}

func (a *fakeAuth) record(what string, cr adauth.Credentials) {
	pw, _ := cr.Password()
	a.mu.Lock()
	a.log = append(a.log, what+" "+cr.User+"/"+pw)
	a.mu.Unlock()
}

// events returns the log so far.
func (a *fakeAuth) events() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.log...)
}

func (a *fakeAuth) Authenticate(ctx context.Context, host string, cr adauth.Credentials) (*adauth.Grant, error) {
	a.calls.Add(1)
	a.mu.Lock()
	a.seen = append(a.seen, host)
	a.names = append(a.names, adauth.ExpectedName(ctx))
	a.mu.Unlock()
	if want := adauth.ExpectedName(ctx); a.identity != "" && want != "" && !strings.EqualFold(want, a.identity) {
		return nil, &adauth.AuthError{Addr: host, Step: adauth.StepLogon, Kind: adauth.ErrIdentityMismatch,
			Diagnosis: diag.Diagnosis{Code: diag.IdentityMismatch, Summary: "answered as " + a.identity, Fix: "check the name"}}
	}
	if a.unreachable[host] {
		return nil, &adauth.AuthError{Addr: host, Account: cr.Account(), Step: adauth.StepConnect, Kind: adauth.ErrUnreachable,
			Diagnosis: diag.Diagnosis{Code: diag.FirewallRefused, Summary: "refused", Fix: "open port 445"}, Err: errors.New("connection refused")}
	}
	a.record("start", cr)
	defer a.record("end", cr)
	n := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	for {
		p := a.peak.Load()
		if n <= p || a.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if err := a.g.wait(ctx, "authenticate"); err != nil {
		return nil, &adauth.AuthError{Addr: host, Step: adauth.StepLogon, Kind: adauth.ErrCanceled, Err: err,
			Diagnosis: diag.Diagnosis{Code: diag.Canceled, Summary: "canceled"}}
	}
	pw, _ := cr.Password()
	adminPW := a.adminPW
	if adminPW == "" {
		adminPW = "good"
	}
	switch {
	case cr.User == "admin" && pw == adminPW:
		return &adauth.Grant{Addr: host, Credentials: cr, Facts: adauth.Facts{LocalAccount: a.local}}, nil
	case cr.User == "user" && pw == "good":
		return nil, &adauth.AuthError{Addr: host, Account: cr.Account(), Step: adauth.StepAdminShare, Kind: adauth.ErrNotAdmin, Retryable: true,
			Diagnosis: diag.Diagnosis{Code: diag.NotAdmin, Summary: "not an administrator", Fix: "use an admin"}}
	case cr.User == "guest":
		return nil, &adauth.AuthError{Addr: host, Account: cr.Account(), Step: adauth.StepLogon, Kind: adauth.ErrGuest,
			Diagnosis: diag.Diagnosis{Code: diag.GuestOnly, Summary: "guest only", Fix: "classic model"}}
	default:
		return nil, &adauth.AuthError{Addr: host, Account: cr.Account(), Step: adauth.StepLogon, Kind: adauth.ErrLogonFailure, Retryable: true,
			Diagnosis: diag.Diagnosis{Code: diag.LogonFailure, Summary: "logon failure", Fix: "check the password"}}
	}
}

// record journals what a fake did in the session's deploy.Journal, as an
// artifact whose Label is what ("file applet.exe": kind "file", name
// "applet.exe"), for fakeUndoer to undo.
func record(t *deploy.Target, what string) {
	kind, name, _ := strings.Cut(what, " ")
	if _, err := t.Journal.Record(context.Background(), deploy.Artifact{Kind: kind, Addr: t.Addr, Name: name}); err != nil {
		panic(err)
	}
}

// journal is one session's deploy.Journal, as the fakes saw it.
type journal struct{ j *deploy.Journal }

// open returns the labels of what is still recorded.
func (j journal) open() []string {
	var out []string
	for _, a := range j.j.Artifacts() {
		out = append(out, a.Label())
	}
	return out
}

// fakeUndoer undoes the fakes' artifacts (kinds "file" and "service",
// replacing deploy.FileUndoers: the fake grants have no SMB session). It
// blocks at the gate's "undo" when set, and fails on failOn.
type fakeUndoer struct {
	g      *gate
	failOn string
	mu     sync.Mutex
	undone []string
}

func (u *fakeUndoer) Undoers(*adauth.Grant) deploy.Undoers {
	f := func(ctx context.Context, a deploy.Artifact) error {
		if err := u.g.wait(ctx, "undo"); err != nil {
			return err
		}
		if a.Label() == u.failOn {
			return errors.New("cannot delete")
		}
		u.mu.Lock()
		u.undone = append(u.undone, a.Label())
		u.mu.Unlock()
		return nil
	}
	return deploy.Undoers{"file": f, "service": f}
}

type fakeDeployer struct {
	g *gate
	// onJournal is told each session's journal at Deploy.
	onJournal func(*deploy.Journal)
	err       error
	fileErr   error
	steps     int
	mu        sync.Mutex
	files     map[string][]byte // DeployFile's files by local path
}

// DeployFile keeps the file in memory, next to the applet's path.
func (d *fakeDeployer) DeployFile(ctx context.Context, t *deploy.Target, name string, content []byte) (string, error) {
	if d.fileErr != nil {
		return "", d.fileErr
	}
	p := t.AppletPath[:strings.LastIndexByte(t.AppletPath, '\\')+1] + name
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.files == nil {
		d.files = make(map[string][]byte)
	}
	d.files[p] = append([]byte(nil), content...)
	record(t, "file "+name)
	return p, nil
}

// take reads and removes a file as the applet does.
func (d *fakeDeployer) take(path string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.files[path]
	delete(d.files, path)
	return b, ok
}

func (d *fakeDeployer) Deploy(ctx context.Context, t *deploy.Target, progress func(done, total int64)) (string, error) {
	if err := d.g.wait(ctx, "deploy"); err != nil {
		return "", err
	}
	if d.err != nil {
		return "", d.err
	}
	n := d.steps
	if n == 0 {
		n = 4
	}
	for i := 1; i <= n; i++ {
		progress(int64(i*1000), int64(n*1000))
	}
	if d.onJournal != nil {
		d.onJournal(t.Journal)
	}
	record(t, "file applet.exe")
	return `C:\Windows\Temp\applet-` + t.Session + `.exe`, nil
}

type fakePreflight struct {
	g   *gate
	p   *deploy.Preflight
	err error
}

func (f *fakePreflight) Preflight(ctx context.Context, t *deploy.Target) (*deploy.Preflight, error) {
	if err := f.g.wait(ctx, "preflight"); err != nil {
		return nil, err
	}
	return f.p, f.err
}

// fakeLauncher "starts" the applet: a goroutine that checks in with the
// ticket in spec.Args, unless noApplet.
type fakeLauncher struct {
	name      string
	g         *gate
	dep       *fakeDeployer
	err       error
	noApplet  bool
	hangStop  bool         // Stop ignores its context and never returns
	hang      bool         // Launch waits for its context to end
	ctxAlive  atomic.Int32 // 1 when Stop saw the launch context still valid
	mu        sync.Mutex
	launchCtx context.Context
	spec      deploy.LaunchSpec
	calls     atomic.Int32
	running   atomic.Int32 // applets running now
	stops     atomic.Int32
	goodbyes  atomic.Int32 // AppletExited calls
	tickets   []string     // the console address of each ticket read; under mu
}

type fakeHandle struct {
	l      *fakeLauncher
	cancel context.CancelFunc
	exited chan struct{}
	once   sync.Once
}

func (h *fakeHandle) Running(context.Context) (bool, error) {
	select {
	case <-h.exited:
		return false, nil
	default:
		return true, nil
	}
}

func (h *fakeHandle) Stop(context.Context) error {
	if h.l.hangStop {
		select {}
	}
	h.once.Do(func() {
		if h.l.ctx().Err() == nil {
			h.l.ctxAlive.Store(1)
		}
		h.l.stops.Add(1)
		h.cancel()
		<-h.exited
	})
	return nil
}

func (h *fakeHandle) PID() uint32 { return 4242 }

// AppletExited implements deploy.ExitNotifier.
func (h *fakeHandle) AppletExited() { h.l.goodbyes.Add(1) }

func (l *fakeLauncher) Name() string { return l.name }

func (l *fakeLauncher) ctx() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.launchCtx
}

func (l *fakeLauncher) Launch(ctx context.Context, t *deploy.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	l.calls.Add(1)
	l.mu.Lock()
	l.launchCtx = ctx
	l.spec = spec
	l.mu.Unlock()
	if l.hang {
		<-ctx.Done()
		return nil, fmt.Errorf("no answer: %w", ctx.Err())
	}
	if err := l.g.wait(ctx, "launch"); err != nil {
		return nil, &deploy.LaunchError{Launcher: l.name, Step: "create", Kind: deploy.ErrTimeout, Err: err}
	}
	if l.err != nil {
		return nil, l.err
	}
	record(t, "service of "+l.name)
	actx, cancel := context.WithCancel(context.Background())
	h := &fakeHandle{l: l, cancel: cancel, exited: make(chan struct{})}
	if l.noApplet {
		close(h.exited)
		return h, nil
	}
	tk, err := l.readTicket(spec)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fake launcher: %w", err)
	}
	l.running.Add(1)
	go func() {
		defer close(h.exited)
		defer l.running.Add(-1)
		ac, err := checkin.Dial(actx, tk, checkin.Hello{Name: "FAKE", PID: 4242, Applet: "fake"})
		if err != nil {
			return
		}
		_ = ac.Run(actx, time.Hour)
	}()
	return h, nil
}

// readTicket reads the ticket file that the last two arguments name, next
// to the applet, and removes it, as checkin.ReadTicketFile does.
func (l *fakeLauncher) readTicket(spec deploy.LaunchSpec) (checkin.Ticket, error) {
	n := len(spec.Args)
	if n < 2 || spec.Args[n-2] != "-"+checkin.FlagTicketFile {
		return checkin.Ticket{}, fmt.Errorf("no ticket file in %q", spec.Args)
	}
	p := spec.Path[:strings.LastIndexByte(spec.Path, '\\')+1] + spec.Args[n-1]
	b, ok := l.dep.take(p)
	if !ok {
		return checkin.Ticket{}, fmt.Errorf("no ticket file %s", p)
	}
	tk, err := checkin.ParseTicketFile(b)
	if err == nil {
		l.mu.Lock()
		l.tickets = append(l.tickets, tk.Addr)
		l.mu.Unlock()
	}
	return tk, err
}

func launchErr(name string, kind error) error {
	return &deploy.LaunchError{Launcher: name, Step: "create service", Kind: kind, Err: errors.New("boom"),
		Diagnosis: diag.Diagnosis{Code: diag.Code(name + "-diag"), Summary: name + " cannot", Fix: "fix " + name}}
}

type harness struct {
	t        *testing.T
	g        *gate
	auth     *fakeAuth
	dep      *fakeDeployer
	pre      *fakePreflight
	ls       []*fakeLauncher
	journals []journal
	jmu      sync.Mutex
	undo     *fakeUndoer
	cfg      session.Config
	c        *session.Client
}

func newHarness(t *testing.T, mod func(h *harness)) *harness {
	t.Helper()
	g := &gate{}
	h := &harness{t: t, g: g, auth: &fakeAuth{g: g}, dep: &fakeDeployer{g: g}, pre: &fakePreflight{g: g, p: &deploy.Preflight{Product: "Windows"}},
		ls: []*fakeLauncher{{name: "scm", g: g}, {name: "wmi", g: g}}, undo: &fakeUndoer{g: g}}
	h.dep.onJournal = func(j *deploy.Journal) {
		h.jmu.Lock()
		h.journals = append(h.journals, journal{j})
		h.jmu.Unlock()
	}

	admin, _ := adauth.Parse("admin", "good")
	h.cfg = session.Config{
		Authenticator: h.auth, Credentials: admin, Deployer: h.dep, Preflight: h.pre,
		Undoers:  []deploy.Undoer{h.undo},
		Timeouts: session.Timeouts{Checkin: 10 * time.Second, Cleanup: 10 * time.Second},
		// The fake applets check in from 127.0.0.1, the fake hosts are
		// 127.0.2.x: the tests of the address rule clear this. (The
		// hosts are loopback addresses so that the loopback check-in
		// address may be given to them; nothing is sent to them.)
		CheckinFromAnyAddr: true,
	}
	if mod != nil {
		mod(h)
	}
	for _, l := range h.ls {
		l.dep = h.dep
		h.cfg.Launchers = append(h.cfg.Launchers, l)
	}
	c, err := session.New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	t.Cleanup(func() { c.Close() })
	return h
}

func host(i int) discovery.Host {
	return discovery.Host{Name: fmt.Sprintf("PC%02d", i), Addrs: []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 2, byte(i + 1)})}}
}

// collect reads every event of s until the channel is closed.
func collect(t *testing.T, s *session.Session) []session.Event {
	t.Helper()
	var evs []session.Event
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-s.Events():
			if !ok {
				return evs
			}
			evs = append(evs, e)
		case <-timeout:
			t.Fatalf("events not closed; got %v", brief(evs))
		}
	}
}

// until reads events until one satisfies f, and returns them.
func until(t *testing.T, s *session.Session, f func(session.Event) bool) []session.Event {
	t.Helper()
	var evs []session.Event
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-s.Events():
			if !ok {
				t.Fatalf("events closed before the wanted one: %v", brief(evs))
			}
			evs = append(evs, e)
			if f(e) {
				return evs
			}
		case <-timeout:
			t.Fatalf("wanted event not seen: %v", brief(evs))
		}
	}
}

// brief renders state events as "State/step[method]" and the others by kind.
func brief(evs []session.Event) []string {
	var out []string
	for _, e := range evs {
		switch e.Kind {
		case session.EventState:
			s := string(e.State) + "/" + string(e.Step)
			if e.Method != "" {
				s += "[" + e.Method + "]"
			}
			out = append(out, s)
		case session.EventAttempt:
			out = append(out, "attempt:"+e.Method)
		case session.EventProgress:
			out = append(out, "progress")
		}
	}
	return out
}

func states(evs []session.Event) []string {
	var out []string
	for _, s := range brief(evs) {
		if s != "progress" {
			out = append(out, s)
		}
	}
	return out
}
