package standard_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/remotereg"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
	"github.com/lanconnect/lanconnect/wmi"
)

var applet = deploy.AppletFromBytes("lcapplet.exe", "test", []byte("MZ applet"))

func names(ls []session.Launcher) []string {
	var n []string
	for _, l := range ls {
		n = append(n, l.Name())
	}
	return n
}

// inner returns the deploy.Launcher behind a session launcher.
func inner(t *testing.T, l session.Launcher) deploy.Launcher {
	t.Helper()
	sl, ok := l.(standard.Launcher)
	if !ok {
		t.Fatalf("launcher %T is not a standard.Launcher", l)
	}
	return sl.Launcher
}

func TestParseMethod(t *testing.T) {
	for _, s := range []string{"auto", "scm", "wmi"} {
		if m, err := standard.ParseMethod(s); err != nil || string(m) != s {
			t.Errorf("ParseMethod(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "psexec", "SCM", " auto", "scm,wmi"} {
		m, err := standard.ParseMethod(s)
		var oe *standard.OptionError
		if m != "" || !errors.As(err, &oe) || oe.Field != "Method" || !errors.Is(err, standard.ErrBadOptions) {
			t.Errorf("ParseMethod(%q) = %q, %v; want an *OptionError for Method", s, m, err)
			continue
		}
		if !strings.Contains(err.Error(), "auto, scm or wmi") {
			t.Errorf("ParseMethod(%q): %q does not say what is allowed", s, err)
		}
	}
}

func TestMethodSelection(t *testing.T) {
	for _, tc := range []struct {
		method standard.Method
		want   []string
	}{
		{"", []string{"scm", "wmi"}},
		{standard.MethodAuto, []string{"scm", "wmi"}},
		{standard.MethodSCM, []string{"scm"}},
		{standard.MethodWMI, []string{"wmi"}},
	} {
		var cfg session.Config
		if err := standard.Apply(&cfg, standard.Options{Applet: applet, Method: tc.method}); err != nil {
			t.Fatalf("%q: %v", tc.method, err)
		}
		if got := names(cfg.Launchers); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: launchers %v, want %v", tc.method, got, tc.want)
		}
		for _, l := range cfg.Launchers {
			switch d := inner(t, l).(type) {
			case *remotereg.Launcher:
				if l.Name() != "scm" {
					t.Errorf("%q: %s is a remotereg launcher", tc.method, l.Name())
				}
			case *wmi.Launcher:
				if l.Name() != "wmi" {
					t.Errorf("%q: %s is a wmi launcher", tc.method, l.Name())
				}
			default:
				t.Errorf("%q: %s is a %T", tc.method, l.Name(), d)
			}
		}
		// The preflight reads the registry whatever the method.
		if p, ok := cfg.Preflight.(standard.Preflighter); !ok || p.Launcher == nil {
			t.Errorf("%q: preflight %#v", tc.method, cfg.Preflight)
		}
		if cfg.Authenticator == nil || cfg.Deployer == nil || cfg.NewJournal == nil {
			t.Errorf("%q: config not filled: %+v", tc.method, cfg)
		}
	}
}

func TestOverridesUsedAsGiven(t *testing.T) {
	scm := &remotereg.Launcher{ServicePrefix: "acme-", EPMPort: 1135}
	w := &wmi.Launcher{EPMPort: 1135}
	auth := &adauth.SMBAuthenticator{Port: 1445}
	var cfg session.Config
	if err := standard.Apply(&cfg, standard.Options{Applet: applet, SCM: scm, WMI: w, Authenticator: auth, ServicePrefix: "other-", Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	if inner(t, cfg.Launchers[0]) != scm || inner(t, cfg.Launchers[1]) != w || cfg.Authenticator != auth {
		t.Fatalf("overrides not used: %#v, %#v", cfg.Launchers, cfg.Authenticator)
	}
	if cfg.Preflight.(standard.Preflighter).Launcher != scm {
		t.Fatal("the preflight does not use the SCM override")
	}
	// The overrides are not modified; the prefix goes to the Config (and
	// so to every launch spec).
	if scm.ServicePrefix != "acme-" || scm.Logger != nil || w.Logger != nil || auth.Logger != nil {
		t.Fatalf("an override was modified: %+v %+v %+v", scm, w, auth)
	}
	if cfg.ServicePrefix != "other-" {
		t.Fatalf("ServicePrefix %q", cfg.ServicePrefix)
	}
}

func TestDefaultsTakeLoggerAndPrefix(t *testing.T) {
	cfgLog := slog.New(slog.DiscardHandler)
	optLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		opt, want *slog.Logger
	}{{nil, cfgLog}, {optLog, optLog}} {
		cfg := session.Config{Logger: cfgLog}
		if err := standard.Apply(&cfg, standard.Options{Applet: applet, ServicePrefix: "acme_", Logger: tc.opt}); err != nil {
			t.Fatal(err)
		}
		scm := inner(t, cfg.Launchers[0]).(*remotereg.Launcher)
		w := inner(t, cfg.Launchers[1]).(*wmi.Launcher)
		auth := cfg.Authenticator.(*adauth.SMBAuthenticator)
		if scm.Logger != tc.want || w.Logger != tc.want || auth.Logger != tc.want || cfg.Deployer.(standard.Deployer).Logger != tc.want {
			t.Errorf("Options.Logger %p: the pieces do not log to %p", tc.opt, tc.want)
		}
		if scm.ServicePrefix != "acme_" || cfg.ServicePrefix != "acme_" {
			t.Errorf("prefix %q, %q", scm.ServicePrefix, cfg.ServicePrefix)
		}
		if cfg.Logger != cfgLog {
			t.Error("Apply replaced Config.Logger")
		}
	}
}

// Apply fills its own fields and leaves the caller's alone.
func TestApplyLeavesCallerFields(t *testing.T) {
	creds, err := adauth.Parse(`CORP\helpdesk`, "s3cret-Pa55")
	if err != nil {
		t.Fatal(err)
	}
	prompted := false
	cfg := session.Config{
		Discoverers: []discovery.Discoverer{nil},
		Credentials: creds,
		Prompt: func(context.Context, adauth.PromptRequest) (adauth.Credentials, error) {
			prompted = true
			return creds, nil
		},
		MaxPrompts:          2,
		RememberCredentials: true,
		CheckinListen:       "127.0.0.1:0",
		ConsoleAddr:         "127.0.0.1:0",
		AppletArgs:          []string{"-x"},
		AppletParams:        map[string]string{"Note": "n"},
		Vendor:              "Acme",
		AppletName:          "Helper",
		ServicePrefix:       "acme-",
		Timeouts:            session.Timeouts{Checkin: time.Second},
		Concurrency:         3,
	}
	before := cfg
	if err := standard.Apply(&cfg, standard.Options{Applet: applet}); err != nil {
		t.Fatal(err)
	}
	after := cfg
	after.Authenticator, after.Preflight, after.Deployer, after.Launchers, after.NewJournal = nil, nil, nil, nil, nil
	after.Prompt, before.Prompt = nil, nil
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("Apply changed the caller's fields:\n%+v\nwant\n%+v", after, before)
	}
	if cfg.Prompt == nil {
		t.Fatal("Apply removed the prompt")
	}
	cfg.Prompt(context.Background(), adauth.PromptRequest{})
	if !prompted {
		t.Fatal("Apply replaced the prompt")
	}

	// Vendor and AppletName from Options replace the Config's.
	if err := standard.Apply(&cfg, standard.Options{Applet: applet, Vendor: "LanConnect", AppletName: "Example Applet"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Vendor != "LanConnect" || cfg.AppletName != "Example Applet" || cfg.ServicePrefix != "acme-" {
		t.Fatalf("vendor %q, applet %q, prefix %q", cfg.Vendor, cfg.AppletName, cfg.ServicePrefix)
	}
}

func TestValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		opts  standard.Options
		field string
		cause error
	}{
		{"no applet", standard.Options{}, "Applet", deploy.ErrBadApplet},
		{"applet without a name", standard.Options{Applet: deploy.Applet{Path: file}}, "Applet", deploy.ErrBadApplet},
		{"bad method", standard.Options{Applet: applet, Method: "psexec"}, "Method", nil},
		{"upper-case method", standard.Options{Applet: applet, Method: "WMI"}, "Method", nil},
		{"bad prefix", standard.Options{Applet: applet, ServicePrefix: "a b"}, "ServicePrefix", deploy.ErrBadSpec},
		{"long prefix", standard.Options{Applet: applet, ServicePrefix: strings.Repeat("a", 41)}, "ServicePrefix", deploy.ErrBadSpec},
		{"bad vendor", standard.Options{Applet: applet, Vendor: `Acme\Corp`}, "Vendor", deploy.ErrBadSpec},
		{"bad applet name", standard.Options{Applet: applet, AppletName: ".hidden"}, "AppletName", deploy.ErrBadSpec},
		{"missing journal dir", standard.Options{Applet: applet, JournalDir: filepath.Join(dir, "nope")}, "JournalDir", os.ErrNotExist},
		{"journal dir is a file", standard.Options{Applet: applet, JournalDir: file}, "JournalDir", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := session.Config{Vendor: "Keep"}
			err := standard.Apply(&cfg, tc.opts)
			var oe *standard.OptionError
			if !errors.As(err, &oe) || oe.Field != tc.field || !errors.Is(err, standard.ErrBadOptions) {
				t.Fatalf("Apply: %v; want an *OptionError for %s", err, tc.field)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Fatalf("%v does not match %v", err, tc.cause)
			}
			if !strings.HasPrefix(err.Error(), "standard: "+tc.field+": ") {
				t.Fatalf("error text %q", err)
			}
			if !reflect.DeepEqual(cfg, session.Config{Vendor: "Keep"}) {
				t.Fatalf("a failed Apply changed the config: %+v", cfg)
			}
			if err := tc.opts.Validate(); !errors.As(err, &oe) || oe.Field != tc.field {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	ok := standard.Options{Applet: applet, Method: standard.MethodWMI, ServicePrefix: "acme_svc-", Vendor: "Acme Corp", AppletName: "Helper.v2", JournalDir: dir}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

// newJournal applies Options with JournalDir dir and returns the NewJournal.
func newJournal(t *testing.T, dir string) func(context.Context, *session.Target) (session.Journal, error) {
	t.Helper()
	var cfg session.Config
	if err := standard.Apply(&cfg, standard.Options{Applet: applet, JournalDir: dir}); err != nil {
		t.Fatal(err)
	}
	return cfg.NewJournal
}

func TestJournalInMemory(t *testing.T) {
	ctx := context.Background()
	tgt := &session.Target{Session: "s1"}
	j, err := newJournal(t, "")(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	sj := j.(*standard.Journal)
	if sj.Path() != "" || sj.Deploy() == nil {
		t.Fatalf("path %q, journal %v", sj.Path(), sj.Deploy())
	}
	tgt.Journal = j
	if standard.JournalOf(tgt) != sj.Deploy() {
		t.Fatal("JournalOf does not find the session's journal")
	}
	if c := j.Undo(ctx); !c.Clean() || len(c.Undone) != 0 {
		t.Fatalf("empty journal's cleanup %+v", c)
	}
	// Another session.Journal has no deploy.Journal behind it.
	if standard.JournalOf(&session.Target{Journal: otherJournal{}}) != nil || standard.JournalOf(&session.Target{}) != nil {
		t.Fatal("JournalOf of a foreign journal")
	}
}

type otherJournal struct{}

func (otherJournal) Undo(context.Context) session.Cleanup { return session.Cleanup{} }

func TestJournalDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	nj := newJournal(t, dir)

	// A clean session: the file exists from the start and goes at the end.
	j, err := nj(ctx, &session.Target{Session: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s1.json")
	if j.(*standard.Journal).Path() != path {
		t.Fatalf("path %q, want %q", j.(*standard.Journal).Path(), path)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("journal not persisted at once: %v", err)
	}
	if c := j.Undo(ctx); !c.Clean() {
		t.Fatalf("cleanup %+v", c)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("clean journal's file still there: %v", err)
	}

	// A session that leaves something: the file stays, with the artifact,
	// for a later cleanup.
	tgt := &session.Target{Session: "s2"}
	j, err = nj(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	tgt.Journal = j
	dj := standard.JournalOf(tgt)
	dj.Record(ctx, deploy.Artifact{Kind: deploy.KindFile, Host: "10.1.2.3", Share: "ADMIN$", Path: `lanconnect-s2-0a1b2c3d\lcapplet-s2.exe`})
	c := j.Undo(ctx) // no grant: the file cannot be removed
	if c.Clean() || len(c.Left) != 1 || c.Left[0].What != `file ADMIN$\lanconnect-s2-0a1b2c3d\lcapplet-s2.exe` || !errors.Is(c.Left[0].Err, deploy.ErrNoGrant) {
		t.Fatalf("cleanup %+v", c)
	}
	// A kind that Apply's pieces do not record is outside the scope: the
	// whole journal is refused, and each entry reported as left.
	dj.Record(ctx, deploy.Artifact{Kind: "acme.thing", Host: "10.1.2.3", Name: "widget"})
	c = j.Undo(ctx)
	if c.Clean() || len(c.Left) != 2 {
		t.Fatalf("cleanup %+v", c)
	}
	if c.Left[1].What != "acme.thing widget" || !errors.Is(c.Left[1].Err, deploy.ErrOutOfScope) || !errors.Is(c.Left[0].Err, deploy.ErrOutOfScope) {
		t.Errorf("left %+v", c.Left)
	}
	path = filepath.Join(dir, "s2.json")
	reloaded, err := deploy.OpenJournal(path)
	if err != nil || reloaded.Len() != 2 {
		t.Fatalf("kept journal: %v, %v", reloaded, err)
	}

	// A new Journals over the same directory reopens the session's file.
	j, err = newJournal(t, dir)(ctx, &session.Target{Session: "s2"})
	if err != nil || j.(*standard.Journal).Deploy().Len() != 2 {
		t.Fatalf("reopened: %v", err)
	}

	// Session IDs that are not plain file names are refused.
	for _, id := range []string{"", "..", "../s3", "a/b"} {
		if _, err := nj(ctx, &session.Target{Session: id}); err == nil {
			t.Errorf("session ID %q accepted as a journal file name", id)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "*.json")); len(files) != 0 {
		t.Errorf("journal written outside its directory: %v", files)
	}
}

// A relative JournalDir is resolved when Apply runs, so a later change of
// working directory does not move the journals.
func TestJournalDirRelative(t *testing.T) {
	base := t.TempDir()
	if err := os.Mkdir(filepath.Join(base, "journals"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(base)
	nj := newJournal(t, "journals")
	t.Chdir(t.TempDir())
	j, err := nj(context.Background(), &session.Target{Session: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(base, "journals", "s1.json"); j.(*standard.Journal).Path() != want {
		t.Fatalf("path %q, want %q", j.(*standard.Journal).Path(), want)
	}
}

func TestUndoers(t *testing.T) {
	for _, m := range []standard.Method{standard.MethodAuto, standard.MethodSCM, standard.MethodWMI} {
		u := standard.Options{Method: m}.Undoers(nil)
		for _, k := range []string{deploy.KindFile, deploy.KindDir, "remotereg."} {
			if u[k] == nil {
				t.Errorf("%s: no undo function for %q", m, k)
			}
		}
	}
}

func TestAppletFileName(t *testing.T) {
	for _, tc := range [][3]string{
		{"lcapplet.exe", "s0a1", "lcapplet-s0a1.exe"},
		{"acme.helper.exe", "s1", "acme.helper-s1.exe"},
		{"applet", "s1", "applet-s1"},
		{".exe", "s1", ".exe-s1"},
	} {
		if got := standard.AppletFileName(tc[0], tc[1]); got != tc[2] {
			t.Errorf("AppletFileName(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}

func TestCleanupReport(t *testing.T) {
	boom := errors.New("boom")
	c := standard.CleanupReport(deploy.UndoReport{
		Undone:  []deploy.Artifact{{Kind: "file", Share: "ADMIN$", Path: `Temp\a.exe`}, {Kind: "remotereg.service", Name: "lanconnect-1a2b"}},
		Failed:  []deploy.UndoFailure{{Artifact: deploy.Artifact{Kind: "dir", Share: "ADMIN$", Path: `Temp\lanconnect`}, Err: boom}},
		Skipped: []deploy.Artifact{{Kind: "acme.x"}},
	})
	if want := []string{`file ADMIN$\Temp\a.exe`, "remotereg.service lanconnect-1a2b"}; !reflect.DeepEqual(c.Undone, want) {
		t.Errorf("undone %q", c.Undone)
	}
	if len(c.Left) != 2 || c.Left[0].What != `dir ADMIN$\Temp\lanconnect` || c.Left[0].Err != boom || c.Left[1].What != "acme.x" {
		t.Errorf("left %+v", c.Left)
	}
}

// fakeLauncher is a deploy.Launcher that records what it was given.
type fakeLauncher struct {
	g   *adauth.Grant
	j   *deploy.Journal
	err error
}

func (f *fakeLauncher) Name() string { return "fake" }

func (f *fakeLauncher) Launch(_ context.Context, g *adauth.Grant, _ deploy.LaunchSpec, j *deploy.Journal) (deploy.Handle, error) {
	f.g, f.j = g, j
	var h *nilHandle // a typed nil, as a careless launcher might return
	return h, f.err
}

type nilHandle struct{}

func (*nilHandle) Running(context.Context) (bool, error) { return false, nil }
func (*nilHandle) Stop(context.Context) error            { return nil }
func (*nilHandle) PID() uint32                           { return 0 }

func TestLauncherAdapter(t *testing.T) {
	ctx := context.Background()
	tgt := &session.Target{Session: "s1", Grant: &adauth.Grant{Host: "10.1.2.3"}}
	j, _ := newJournal(t, "")(ctx, tgt)
	tgt.Journal = j
	f := &fakeLauncher{err: &deploy.LaunchError{Kind: deploy.ErrLaunchUnsupported}}
	l := standard.Launcher{Method: standard.MethodSCM, Launcher: f}
	h, err := l.Launch(ctx, tgt, deploy.LaunchSpec{})
	if h != nil || !errors.Is(err, deploy.ErrLaunchUnsupported) {
		t.Fatalf("Launch = %#v, %v; want an untyped nil handle and the launcher's error", h, err)
	}
	if f.g != tgt.Grant || f.j != standard.JournalOf(tgt) || f.j == nil {
		t.Fatalf("the launcher got grant %v, journal %v", f.g, f.j)
	}
	if l.Name() != "scm" {
		t.Fatalf("name %q", l.Name())
	}
}

func TestScopeAndUnsafeFolder(t *testing.T) {
	for _, c := range []deploy.CopyOptions{{Dir: "Temp"}, {Dir: `temp\acme`}, {Share: "C$"}} {
		err := standard.Options{Applet: applet, Copy: c}.Validate()
		var oe *standard.OptionError
		if !errors.As(err, &oe) || oe.Field != "Copy" || !errors.Is(err, deploy.ErrUnsafeFolder) || !errors.Is(err, standard.ErrBadOptions) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	o := standard.Options{Applet: applet, ServicePrefix: "acme-", Vendor: "Acme", AppletName: "Tool", Copy: deploy.CopyOptions{Dir: "Acme"}}
	s, err := o.Scope()
	if err != nil {
		t.Fatal(err)
	}
	in := []deploy.Artifact{
		{Kind: deploy.KindDir, Share: "ADMIN$", Path: `Acme`},
		{Kind: deploy.KindDir, Share: "ADMIN$", Path: `Acme\lanconnect-s1-0a1b2c3d`},
		{Kind: deploy.KindFile, Share: "ADMIN$", Path: `Acme\lanconnect-s1-0a1b2c3d\tool-s1.exe`},
		remotereg.Change{Kind: remotereg.ChangeService, Name: "acme-0a1b2c3d"}.ToArtifact(),
		remotereg.Change{Kind: remotereg.ChangeRegistryKey, Name: `SOFTWARE\Acme\Tool\s1`}.ToArtifact(),
		remotereg.Change{Kind: remotereg.ChangeServiceState, Name: "RemoteRegistry", StartType: remotereg.StartDisabled}.ToArtifact(),
	}
	if err := s.Check(in); err != nil {
		t.Fatal(err)
	}
	for _, a := range []deploy.Artifact{
		{Kind: deploy.KindDir, Share: "ADMIN$", Path: `lanconnect-s1-0a1b2c3d`},
		remotereg.Change{Kind: remotereg.ChangeService, Name: "lanconnect-0a1b2c3d"}.ToArtifact(),
		remotereg.Change{Kind: remotereg.ChangeRegistryKey, Name: `SOFTWARE\LanConnect\ExampleApplet\s1`}.ToArtifact(),
	} {
		if err := s.Check([]deploy.Artifact{a}); !errors.Is(err, deploy.ErrOutOfScope) {
			t.Errorf("%v: %v", a, err)
		}
	}
}
