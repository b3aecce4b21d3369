package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/lanconnect/lanconnect/diag"
)

// Sentinel errors for launch failures. A *LaunchError matches exactly one
// of them through errors.Is (its Kind), and also matches its cause.
var (
	// ErrLaunchUnsupported means this launcher cannot work on this target
	// or over this transport (the server does not implement the call, or
	// the interface is not served at all). It is the signal to fall back
	// to the next launcher; it says nothing about the credentials.
	ErrLaunchUnsupported = errors.New("deploy: launch method not supported by the target")
	// ErrAccessDenied means the target refused the operation for these
	// credentials: the account is not an administrator, or UAC remote
	// restrictions strip a local administrator's token.
	ErrAccessDenied = errors.New("deploy: access denied")
	// ErrServiceExists means a service of the chosen name already exists.
	ErrServiceExists = errors.New("deploy: service already exists")
	// ErrNotServiceAware means the service was created and started but
	// the applet never reported SERVICE_RUNNING to the Service Control
	// Manager (Windows error 1053): it is not written as a service.
	ErrNotServiceAware = errors.New("deploy: applet is not service-aware")
	// ErrNotExecutable means the target cannot run the applet's file: it
	// is not a Windows program for the computer's architecture (an ARM64
	// or 32-bit-only build, or a damaged file; Windows error 193,
	// ERROR_BAD_EXE_FORMAT). Another launch method would fail the same
	// way, so it is no reason to fall back.
	ErrNotExecutable = errors.New("deploy: applet is not executable on the target")
	// ErrUnreachable means the endpoint the launcher needs is not
	// reachable or not listening: a closed port, a refused connection,
	// or a named pipe that is not available.
	ErrUnreachable = errors.New("deploy: launch endpoint unreachable")
	// ErrTimeout means a step did not finish within its deadline, for
	// example an endpoint that accepts the connection and never answers.
	ErrTimeout = errors.New("deploy: launch step timed out")
	// ErrAttemptLeftBehind means a launch attempt failed and could not
	// remove what it had created on the target (a service, or a process
	// it started, which may still run). The journal still holds it for
	// the session's cleanup. It is never a reason to try another launcher:
	// a second applet must not start beside one that may run.
	ErrAttemptLeftBehind = errors.New("deploy: the failed attempt's service or process could not be removed")
	// ErrBadSpec means the LaunchSpec is invalid; nothing was sent.
	ErrBadSpec = errors.New("deploy: invalid launch spec")
)

// LaunchError is the error of a failed launch step. Kind is one of the
// sentinels above (errors.Is matches it); Err is the underlying cause
// (errors.Is and errors.As reach it too).
type LaunchError struct {
	// Launcher is the Name of the launcher that failed.
	Launcher string
	// Step names what was being done: "open scm", "create service",
	// "start service", "wait running", "preflight", ...
	Step string
	// Kind is one of the sentinel errors, or nil when the failure fits
	// none of them.
	Kind error
	// Diagnosis explains the failure to a person.
	Diagnosis diag.Diagnosis
	// Err is the underlying error.
	Err error
}

// Error returns "launcher: step: kind: cause (summary)", where each
// layer says its context once: the launcher and the step are left out
// when the cause already begins with them, the kind when the cause
// already matches it (a nested LaunchError), the kind's "deploy: "
// package prefix always, and the diagnosis summary when the cause already
// carries it. %+v prints every part and the cause's raw text (see the
// launchers' endpoint errors), which connect -v and NDJSON show.
func (e *LaunchError) Error() string { return e.text(false) }

// Format prints Error for %v and %s (quoted for %q), and the raw chain
// for %+v.
func (e *LaunchError) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", e.text(false))
		return
	}
	io.WriteString(f, e.text(verb == 'v' && f.Flag('+')))
}

// Diagnose returns the diagnosis (diag.Diagnoser).
func (e *LaunchError) Diagnose() diag.Diagnosis { return e.Diagnosis }

func (e *LaunchError) text(raw bool) string {
	cause := ""
	if e.Err != nil {
		if raw {
			cause = fmt.Sprintf("%+v", e.Err)
		} else {
			cause = e.Err.Error()
		}
	}
	var b strings.Builder
	rest := cause
	for _, p := range []string{e.Launcher, e.Step} {
		if p == "" {
			continue
		}
		if !raw && strings.HasPrefix(rest, p+": ") {
			rest = rest[len(p)+2:]
			continue
		}
		b.WriteString(p)
		b.WriteString(": ")
	}
	kind := ""
	if e.Kind != nil && (e.Err == nil || !errors.Is(e.Err, e.Kind)) {
		kind = strings.TrimPrefix(e.Kind.Error(), "deploy: ")
	}
	switch {
	case kind != "" && cause != "":
		b.WriteString(kind + ": " + cause)
	case kind != "":
		b.WriteString(kind)
	case cause != "":
		b.WriteString(cause)
	default:
		b.WriteString("launch failed")
	}
	if sum := e.Diagnosis.Summary; sum != "" && !strings.Contains(cause, sum) {
		b.WriteString(" (")
		b.WriteString(sum)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the kind and the cause, so errors.Is and errors.As see
// both.
func (e *LaunchError) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// LaunchSpec says what to start on the target. Launchers validate it with
// Validate before they send anything.
type LaunchSpec struct {
	// Path is the applet's path on the target in local form, for example
	// `C:\Windows\Temp\applet.exe`. Required.
	Path string
	// Args are the applet's command-line arguments, such as the name of
	// its check-in ticket file. Each is quoted for the Windows command
	// line by CommandLine; they are not interpreted. Every local user of
	// the target can read them (ImagePath, process list): never secrets.
	Args []string
	// Params are optional applet parameters that a launcher may store on
	// the target (remotereg writes them under
	// HKLM\SOFTWARE\<Vendor>\<Applet>\<SessionID>, administrators only
	// where the server allows it). Nil means none. Never secrets.
	Params map[string]string
	// SessionID identifies this session; it names the parameter key.
	// Required when Params is set. Letters, digits, '-', '_' and '.'.
	SessionID string
	// Vendor and Applet name the parameter key; required when Params is
	// set. The same character rules as SessionID, plus spaces.
	Vendor, Applet string
	// ServicePrefix starts the name of any service a launcher creates; a
	// random suffix follows. Empty means the launcher's default. Letters,
	// digits, '-' and '_' only, at most 40 characters.
	ServicePrefix string
}

// Validate checks the spec and returns an error that matches ErrBadSpec,
// or nil.
func (s LaunchSpec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadSpec}, args...)...)
	}
	if !isWindowsAbsPath(s.Path) {
		return bad("path %q is not an absolute Windows path such as C:\\Windows\\Temp\\applet.exe", s.Path)
	}
	if strings.ContainsAny(s.Path, "\"\x00\r\n") {
		return bad("path contains a quote, NUL or newline")
	}
	for i, a := range s.Args {
		if strings.ContainsAny(a, "\x00\r\n") {
			return bad("argument %d contains NUL or a newline", i)
		}
	}
	if len(s.Params) > 0 {
		if !validName(s.SessionID, false) {
			return bad("session ID %q", s.SessionID)
		}
		if !validName(s.Vendor, true) || !validName(s.Applet, true) {
			return bad("vendor %q or applet %q", s.Vendor, s.Applet)
		}
		for k, v := range s.Params {
			if k == "" || strings.ContainsAny(k, `\`+"\x00") || strings.ContainsRune(v, 0) {
				return bad("parameter %q", k)
			}
		}
	}
	if p := s.ServicePrefix; p != "" {
		if len(p) > 40 {
			return bad("service prefix longer than 40 characters")
		}
		for _, r := range p {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return bad("service prefix %q: only letters, digits, '-' and '_'", p)
			}
		}
	}
	return nil
}

func isWindowsAbsPath(p string) bool {
	if len(p) < 4 || p[1] != ':' || p[2] != '\\' {
		return false
	}
	c := p[0] | 0x20
	return c >= 'a' && c <= 'z' && !strings.HasSuffix(p, `\`)
}

func validName(s string, spaces bool) bool {
	if s == "" || len(s) > 128 || s[0] == '.' || s[0] == ' ' {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '-' || r == '_' || r == '.' || (spaces && r == ' ')
		if !ok {
			return false
		}
	}
	return true
}

// CommandLine returns the Windows command line for the spec: the quoted
// path followed by each argument quoted by the rules that
// CommandLineToArgvW reverses. It does not validate the spec.
func (s LaunchSpec) CommandLine() string {
	var b strings.Builder
	b.WriteString(`"` + s.Path + `"`)
	for _, a := range s.Args {
		b.WriteByte(' ')
		b.WriteString(QuoteArg(a))
	}
	return b.String()
}

// QuoteArg quotes one argument for a Windows command line so that
// CommandLineToArgvW (and Go's os.Args on Windows) return it unchanged.
// Arguments without spaces, tabs or quotes are returned as they are.
func QuoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\"") {
		return a
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for i := 0; i < len(a); i++ {
		switch c := a[i]; c {
		case '\\':
			slashes++
		case '"':
			b.WriteString(strings.Repeat(`\`, 2*slashes+1))
			b.WriteByte('"')
			slashes = 0
			continue
		default:
			b.WriteString(strings.Repeat(`\`, slashes))
			slashes = 0
			b.WriteByte(c)
			continue
		}
	}
	b.WriteString(strings.Repeat(`\`, 2*slashes))
	b.WriteByte('"')
	return b.String()
}

// Launcher starts the applet on a target. Implementations are in
// packages remotereg (a Windows service through the Service Control
// Manager, Name "scm") and wmi (Win32_Process.Create, Name "wmi"); a
// vendor may write its own against this package alone. Package session
// tries the configured launchers in order and falls back on
// ErrLaunchUnsupported, ErrUnreachable, ErrTimeout and ErrNotServiceAware.
//
// A Launcher records in t.Journal everything it creates or changes on the
// target (services, registry keys, service-state changes) before it
// relies on it, under artifact kinds of its own ("<prefix>.<what>"), so
// that the session's cleanup, or a later recovery from a persisted
// journal, can undo it even after a crash; it then also implements
// Undoer. t.Journal may be nil: record nothing then. A failed Launch has
// already undone what it did (what it could not undo stays journaled and
// the error matches ErrAttemptLeftBehind). Failures are *LaunchError
// values whose Kind decides the fallback. Launch does not copy the
// applet (see Copy and Deployer).
//
// The context given to Launch may end when the attempt times out; after
// a successful Launch, the session keeps it valid until it has been
// cleaned up, so a launcher may tie the handle's connections to it.
type Launcher interface {
	// Name is the short method name technicians see in session events
	// and in errors ("scm", "wmi").
	Name() string
	// Launch starts spec on t's computer (through t.Grant) and returns a
	// Handle once the launcher can tell that the applet runs.
	Launch(ctx context.Context, t *Target, spec LaunchSpec) (Handle, error)
}

// Handle is a launched applet.
//
// A Handle does not own the grant it was launched on: the grant must stay
// open while the Handle is used, and closing the grant does not stop the
// applet.
type Handle interface {
	// Running reports whether the applet is running now, as far as the
	// launcher can see (for remotereg: the service state). It returns an
	// error when it cannot tell.
	Running(ctx context.Context) (bool, error)
	// Stop stops the applet and removes what the launcher created for it
	// (for remotereg: the service and the parameter key), and records the
	// removals in the journal. It is safe to call more than once.
	Stop(ctx context.Context) error
	// PID returns the applet's process ID on the target, or 0 when the
	// launcher does not know it.
	PID() uint32
}

// ExitNotifier is a Handle that can be told that its applet has exited on
// its own: it said goodbye over the check-in connection after the console
// asked it to stop. Its Stop then kills nothing (a process ID may already
// belong to another process) and only removes what the launcher created.
// Handles that do not implement it are stopped as usual.
type ExitNotifier interface {
	// AppletExited records that the applet has exited or is exiting by
	// itself. It sends nothing to the target.
	AppletExited()
}
