package standard

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/remotereg"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/wmi"
)

// Method selects the launchers a session tries, in order. Its values are
// also the launchers' names in session events ("scm", "wmi").
type Method string

// The launch methods.
const (
	// MethodAuto tries the Service Control Manager through remotereg,
	// then WMI when the first cannot work on the target. The zero Method
	// means MethodAuto.
	MethodAuto Method = "auto"
	// MethodSCM uses only remotereg's Service Control Manager launcher.
	MethodSCM Method = "scm"
	// MethodWMI uses only wmi's Win32_Process.Create launcher.
	MethodWMI Method = "wmi"
)

// ErrBadOptions is matched (errors.Is) by every *OptionError.
var ErrBadOptions = errors.New("standard: invalid options")

// OptionError says which field of Options is unusable and why. It matches
// ErrBadOptions, and its cause (for example deploy.ErrBadApplet) with
// errors.Is. It never contains a credential: Options holds none.
type OptionError struct {
	// Field is the Options field, for example "Method" or "JournalDir".
	Field string
	// Err is why the field is unusable.
	Err error
}

// Error returns "standard: Field: why".
func (e *OptionError) Error() string {
	return "standard: " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns ErrBadOptions and the cause.
func (e *OptionError) Unwrap() []error { return []error{ErrBadOptions, e.Err} }

// ParseMethod returns the Method named s: exactly "auto", "scm" or "wmi".
// Anything else, the empty string included, is an *OptionError for field
// "Method". It does not check that the method can work on any target.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case MethodAuto, MethodSCM, MethodWMI:
		return m, nil
	}
	return "", &OptionError{Field: "Method", Err: fmt.Errorf("must be auto, scm or wmi, not %q", s)}
}

// Options say how Apply wires the standard pieces. Only Applet (or
// Applets) is required;
// every other zero field takes the pieces' own defaults.
//
// The SCM, WMI, Authenticator and Launchers overrides are used as they
// are: Apply does not change them (their Logger and ServicePrefix
// included), so set their fields before Apply and do not change them
// afterwards.
type Options struct {
	// Applet is what Deployer copies: make it with deploy.AppletFromFile
	// or deploy.AppletFromBytes. Its Name gives the file name on the
	// target, made unique per session: "acme.exe" is copied as
	// "acme-<session ID>.exe". Every session sends from the Applet's one
	// read-only copy in memory (see deploy.Applet): a bulk connect to N
	// hosts holds the applet once, not N times.
	Applet deploy.Applet
	// Applets, when set, are the applet's variants per architecture
	// (deploy.Applets) and replace Applet: the session copies the one
	// that runs on the target (see deploy.VariantDeployer).
	Applets deploy.Applets
	// Method selects the launchers; the zero value means MethodAuto.
	Method Method
	// ServicePrefix starts the name of the service that the SCM launcher
	// creates (letters, digits, '-' and '_', at most 40); empty means
	// remotereg.DefaultServicePrefix, unless the caller set
	// session.Config.ServicePrefix itself.
	ServicePrefix string
	// JournalDir, when set, is an existing directory where each session's
	// journal is persisted as <session ID>.json before any change is
	// relied on, and removed once the session's cleanup left nothing
	// behind; a console that crashed can then undo what is left with
	// Undoers. Empty keeps journals in memory. Apply does not create it.
	JournalDir string
	// Vendor and AppletName name the registry key under which remotereg
	// stores the applet's parameters (session.Config.AppletParams):
	// HKLM\SOFTWARE\<Vendor>\<AppletName>\<session ID>. Letters, digits,
	// spaces, '-', '_' and '.'. Empty leaves the Config's own values.
	Vendor, AppletName string
	// Copy tunes deploy.Copy (verification, writes in flight, and the
	// optional parent Dir of the session folders, which must be under
	// ADMIN$ and not Temp: see deploy.CheckFolder). Its Folder, Journal,
	// Progress and Logger are set per session. A nil WriteLimit becomes
	// one of deploy.DefaultWriteLimit shared by every session of the
	// Config, which bounds the memory of a bulk connect's copies.
	Copy deploy.CopyOptions
	// SCM, when set, is the Service Control Manager launcher, also used
	// for the preflight and to undo its own artifacts; nil means a
	// remotereg.Launcher with ServicePrefix and Logger.
	SCM *remotereg.Launcher
	// WMI, when set, is the WMI launcher; nil means a wmi.Launcher with
	// Logger.
	WMI *wmi.Launcher
	// Launchers are extra launchers (a vendor's own deploy.Launcher),
	// tried after the ones Method selects, in this order. Those that
	// implement deploy.Undoer undo their own artifacts in each session's
	// cleanup and in Undoers. They do not replace the method's launchers.
	Launchers []deploy.Launcher
	// ExtraScope holds the checks (deploy.Scope) of the artifact kinds
	// that Launchers record. Scope, and so each session's cleanup, refuses
	// a journal with an artifact of a kind it has no check for: a
	// launcher in Launchers that journals anything needs its kinds here.
	ExtraScope deploy.Scope
	// Authenticator, when set, replaces the default
	// adauth.SMBAuthenticator with Logger. Any adauth.Authenticator will
	// do; its grants must carry an SMB session for Deployer and the SCM
	// launcher (adauth.SMBAuthenticator's do).
	Authenticator adauth.Authenticator
	// Resolver, when set, replaces the default name resolver (a Resolver
	// with Logger: DNS first, then a NetBIOS broadcast).
	Resolver session.Resolver
	// Logger is given to the pieces Apply makes; nil means the Config's
	// Logger (and nil there discards). Credentials never appear in it.
	Logger *slog.Logger
}

// Validate checks o without touching the network: the applet's description,
// the method, the service prefix, the vendor and applet names, and that
// JournalDir (when set) is an existing directory. Every error is an
// *OptionError.
func (o Options) Validate() error {
	if len(o.Applets) > 0 {
		if err := o.Applets.Validate(); err != nil {
			return &OptionError{Field: "Applets", Err: err}
		}
	} else if err := o.Applet.Validate(); err != nil {
		return &OptionError{Field: "Applet", Err: err}
	}
	if o.Method != "" {
		if _, err := ParseMethod(string(o.Method)); err != nil {
			return err
		}
	}
	// The launch spec's own rules, checked once here instead of at every
	// launch.
	const path, id = `C:\Windows\x.exe`, "s0"
	if o.ServicePrefix != "" {
		if err := (deploy.LaunchSpec{Path: path, ServicePrefix: o.ServicePrefix}).Validate(); err != nil {
			return &OptionError{Field: "ServicePrefix", Err: err}
		}
	}
	params := map[string]string{"x": ""}
	if o.Vendor != "" {
		if err := (deploy.LaunchSpec{Path: path, Params: params, SessionID: id, Vendor: o.Vendor, Applet: "x"}).Validate(); err != nil {
			return &OptionError{Field: "Vendor", Err: err}
		}
	}
	if o.AppletName != "" {
		if err := (deploy.LaunchSpec{Path: path, Params: params, SessionID: id, Vendor: "x", Applet: o.AppletName}).Validate(); err != nil {
			return &OptionError{Field: "AppletName", Err: err}
		}
	}
	if _, _, err := deploy.CheckFolder(o.Copy.Share, o.Copy.Dir); err != nil {
		return &OptionError{Field: "Copy", Err: err}
	}
	if o.JournalDir != "" {
		st, err := os.Stat(o.JournalDir)
		if err != nil {
			return &OptionError{Field: "JournalDir", Err: err}
		}
		if !st.IsDir() {
			return &OptionError{Field: "JournalDir", Err: fmt.Errorf("%s is not a directory", o.JournalDir)}
		}
	}
	return nil
}

// pieces are the concrete launchers that Options select.
type pieces struct {
	scm *remotereg.Launcher
	wmi *wmi.Launcher
}

func (o Options) pieces(log *slog.Logger) pieces {
	p := pieces{scm: o.SCM, wmi: o.WMI}
	if p.scm == nil {
		p.scm = &remotereg.Launcher{ServicePrefix: o.ServicePrefix, Logger: log}
	}
	if p.wmi == nil {
		p.wmi = &wmi.Launcher{Logger: log}
	}
	return p
}

// launchers returns the launchers of method m, in order, then extra.
func (p pieces) launchers(m Method, extra []deploy.Launcher) []deploy.Launcher {
	var ls []deploy.Launcher
	switch m {
	case MethodSCM:
		ls = []deploy.Launcher{p.scm}
	case MethodWMI:
		ls = []deploy.Launcher{p.wmi}
	default:
		ls = []deploy.Launcher{p.scm, p.wmi}
	}
	return append(ls, extra...)
}

// Apply validates opts and fills cfg with the standard pieces. Two rules,
// field by field:
//
// The pieces are always overwritten, whatever cfg held:
//
//   - Authenticator: opts.Authenticator, else an adauth.SMBAuthenticator;
//   - Resolver: opts.Resolver, else a Resolver (DNS first, then NetBIOS);
//   - Preflight: the SCM launcher (remotereg reads the registry, whatever
//     the method);
//   - Deployer: a Deployer of opts.Applet, whose copies share
//     opts.Copy.WriteLimit (a new deploy.NewWriteLimit of
//     deploy.DefaultWriteLimit when nil);
//   - Launchers: "scm" then "wmi", or the one that opts.Method names,
//     followed by opts.Launchers;
//   - Undoers: the SCM launcher, so that its artifacts are undone even
//     when cfg.Preflight is changed afterwards (the launchers' own
//     Undoers are used through Launchers);
//   - UndoScope: opts.Scope (with the Config's final names below).
//
// The plain values are taken from opts when opts has one, and otherwise
// left as cfg has them:
//
//   - JournalDir: opts.JournalDir (made absolute);
//   - ServicePrefix, Vendor, AppletName.
//
// Every other Config field is left alone. To change a piece, set the
// Options field, or change cfg after Apply. On error (an *OptionError) cfg
// is unchanged. Apply sends nothing and starts nothing; session.New does
// the rest.
func Apply(cfg *session.Config, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	dir := opts.JournalDir
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return &OptionError{Field: "JournalDir", Err: err}
		}
		dir = abs
	}
	log := opts.Logger
	if log == nil {
		log = cfg.Logger
	}
	p := opts.pieces(log)
	if opts.Authenticator != nil {
		cfg.Authenticator = opts.Authenticator
	} else {
		cfg.Authenticator = &adauth.SMBAuthenticator{Logger: log}
	}
	cfg.Preflight = p.scm
	cp := opts.Copy
	if cp.WriteLimit == nil {
		cp.WriteLimit = deploy.NewWriteLimit(deploy.DefaultWriteLimit)
	}
	cfg.Deployer = Deployer{Applet: opts.Applet, Applets: opts.Applets, Copy: cp, Logger: log}
	cfg.Launchers = p.launchers(opts.Method, opts.Launchers)
	cfg.Undoers = []deploy.Undoer{p.scm}
	if opts.Resolver != nil {
		cfg.Resolver = opts.Resolver
	} else {
		cfg.Resolver = &Resolver{Logger: log}
	}
	if opts.ServicePrefix != "" {
		cfg.ServicePrefix = opts.ServicePrefix
	}
	if opts.Vendor != "" {
		cfg.Vendor = opts.Vendor
	}
	if opts.AppletName != "" {
		cfg.AppletName = opts.AppletName
	}
	// Undo is restricted to what these sessions make, with the Config's
	// final names.
	scoped := opts
	scoped.ServicePrefix, scoped.Vendor, scoped.AppletName = cfg.ServicePrefix, cfg.Vendor, cfg.AppletName
	scope, err := scoped.Scope()
	if err != nil {
		return &OptionError{Field: "Copy", Err: err}
	}
	if dir != "" {
		cfg.JournalDir = dir
	}
	cfg.UndoScope = scope
	return nil
}

// Scope returns what a journal of these options may undo
// (deploy.Journal.UndoWithin): files and folders that deploy.Copy makes
// under ADMIN$ with o.Copy.Dir (deploy.FileScope), services named with
// o.ServicePrefix (or the SCM launcher's prefix, or
// remotereg.DefaultServicePrefix), the parameter keys under
// HKLM\SOFTWARE\<o.Vendor>\<o.AppletName>, the Remote Registry
// service's start state, and whatever o.ExtraScope accepts (for the kinds
// of o.Launchers). It fails when o.Copy.Dir is not admin-only. It does
// not touch any target.
func (o Options) Scope() (deploy.Scope, error) {
	files, err := deploy.FileScope(o.Copy.Dir)
	if err != nil {
		return nil, err
	}
	s := o.pieces(o.Logger).scm.Scope(o.ServicePrefix, o.Vendor, o.AppletName)
	maps.Copy(s, files)
	maps.Copy(s, o.ExtraScope)
	return s, nil
}

// Undoers returns the undo functions for every kind of artifact that the
// pieces o selects record, acting through g's session: files and
// directories (deploy.Copy), remotereg's services, registry keys and
// service-state changes, and the kinds of every launcher in o.Launchers
// that implements deploy.Undoer. They do not depend on Method, so a
// journal of any session, reloaded with deploy.OpenJournal (for example
// from session.Config.JournalDir after a crash), can be undone with them;
// restrict it with Scope first (deploy.Journal.UndoWithin), since the file
// is only as trustworthy as the directory it was read from. o is not
// validated: the applet and JournalDir play no part.
func (o Options) Undoers(g *adauth.Grant) deploy.Undoers {
	u := deploy.FileUndoers(g)
	maps.Copy(u, o.pieces(o.Logger).scm.Undoers(g))
	for _, l := range o.Launchers {
		if p, ok := l.(deploy.Undoer); ok {
			maps.Copy(u, p.Undoers(g))
		}
	}
	return u
}
