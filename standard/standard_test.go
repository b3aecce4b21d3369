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

func names(ls []deploy.Launcher) []string {
	var n []string
	for _, l := range ls {
		n = append(n, l.Name())
	}
	return n
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
			switch d := l.(type) {
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
		p, ok := cfg.Preflight.(*remotereg.Launcher)
		if !ok || p == nil {
			t.Errorf("%q: preflight %#v", tc.method, cfg.Preflight)
		}
		// remotereg's artifacts are undone whatever the method.
		if len(cfg.Undoers) != 1 || cfg.Undoers[0] != deploy.Undoer(p) {
			t.Errorf("%q: undoers %#v", tc.method, cfg.Undoers)
		}
		if cfg.Authenticator == nil || cfg.Deployer == nil || cfg.UndoScope == nil {
			t.Errorf("%q: config not filled: %+v", tc.method, cfg)
		}
	}
}

// TestApplySharesOneWriteLimit: the sessions of a Config share one
// deploy.WriteLimit (made when Options.Copy has none, kept when it has)
// and one read-only copy of the applet.
func TestApplySharesOneWriteLimit(t *testing.T) {
	var cfg session.Config
	if err := standard.Apply(&cfg, standard.Options{Applet: applet}); err != nil {
		t.Fatal(err)
	}
	d := cfg.Deployer.(standard.Deployer)
	if d.Copy.WriteLimit == nil {
		t.Fatal("no shared WriteLimit")
	}
	if d.Applet.Content != applet.Content {
		t.Fatal("the Deployer holds another copy of the applet")
	}
	own := deploy.NewWriteLimit(3)
	if err := standard.Apply(&cfg, standard.Options{Applet: applet, Copy: deploy.CopyOptions{WriteLimit: own}}); err != nil {
		t.Fatal(err)
	}
	if cfg.Deployer.(standard.Deployer).Copy.WriteLimit != own {
		t.Fatal("Options.Copy.WriteLimit replaced")
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
	if cfg.Launchers[0] != scm || cfg.Launchers[1] != w || cfg.Authenticator != auth {
		t.Fatalf("overrides not used: %#v, %#v", cfg.Launchers, cfg.Authenticator)
	}
	if cfg.Preflight != scm {
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
		scm := cfg.Launchers[0].(*remotereg.Launcher)
		w := cfg.Launchers[1].(*wmi.Launcher)
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
	if _, ok := after.Resolver.(*standard.Resolver); !ok {
		t.Fatalf("Resolver %T, want the standard one", after.Resolver)
	}
	after.Authenticator, after.Preflight, after.Deployer, after.Launchers, after.UndoScope, after.Undoers, after.Resolver = nil, nil, nil, nil, nil, nil, nil
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

// A relative JournalDir is resolved when Apply runs, so a later change of
// working directory does not move the journals; an empty one leaves the
// Config's.
func TestJournalDirRelative(t *testing.T) {
	base := t.TempDir()
	if err := os.Mkdir(filepath.Join(base, "journals"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(base)
	var cfg session.Config
	if err := standard.Apply(&cfg, standard.Options{Applet: applet, JournalDir: "journals"}); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(base, "journals"); cfg.JournalDir != want {
		t.Fatalf("JournalDir %q, want %q", cfg.JournalDir, want)
	}
	cfg = session.Config{JournalDir: "/var/lib/console"}
	if err := standard.Apply(&cfg, standard.Options{Applet: applet}); err != nil {
		t.Fatal(err)
	}
	if cfg.JournalDir != "/var/lib/console" {
		t.Fatalf("JournalDir %q: Apply replaced the Config's with an empty one", cfg.JournalDir)
	}
}

// The scope Apply sets refuses a kind that its pieces do not record,
// unless ExtraScope accepts it.
func TestApplyUndoScope(t *testing.T) {
	thing := deploy.Artifact{Kind: "acme.thing", Addr: "10.1.2.3", Name: "widget"}
	var cfg session.Config
	if err := standard.Apply(&cfg, standard.Options{Applet: applet}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.UndoScope.Check([]deploy.Artifact{thing}); !errors.Is(err, deploy.ErrOutOfScope) {
		t.Fatalf("acme.thing in the default scope: %v", err)
	}
	extra := deploy.Scope{"acme.": func(deploy.Artifact) error { return nil }}
	if err := standard.Apply(&cfg, standard.Options{Applet: applet, ExtraScope: extra}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.UndoScope.Check([]deploy.Artifact{thing}); err != nil {
		t.Fatalf("ExtraScope not used: %v", err)
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

// DeployFile writes next to the applet, so the applet's folder must be
// under the share's SystemRoot; a name must be a plain file name. Nothing
// is sent in these cases (there is no grant).
func TestDeployFileRefusals(t *testing.T) {
	for _, c := range []struct{ path, name string }{
		{`D:\Apps\applet.exe`, "s1.ticket"},
		{`C:\WindowsX\applet.exe`, "s1.ticket"},
		{`C:\Windows\Temp\applet.exe`, `..\s1.ticket`},
		{`C:\Windows\Temp\applet.exe`, ""},
	} {
		_, err := standard.Deployer{}.DeployFile(context.Background(), &deploy.Target{AppletPath: c.path}, c.name, []byte("secret"))
		if !errors.Is(err, deploy.ErrBadOptions) {
			t.Errorf("%s + %q: %v, want ErrBadOptions", c.path, c.name, err)
		}
	}
	// Inside SystemRoot it gets as far as the (missing) grant.
	_, err := standard.Deployer{}.DeployFile(context.Background(), &deploy.Target{AppletPath: `c:\windows\lc-s1\applet.exe`}, "s1.ticket", []byte("secret"))
	if !errors.Is(err, deploy.ErrNoGrant) {
		t.Fatalf("inside SystemRoot: %v, want ErrNoGrant", err)
	}
}
