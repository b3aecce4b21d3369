package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session/checkin"
)

// State is where a session is. The four names are part of the API: they
// appear as they are in consoles and in connect's NDJSON output.
type State string

// The states of a session. A session starts in Connecting and ends in
// Failed or Closed; Running may come between.
const (
	// Connecting: the session is working through its steps.
	Connecting State = "Connecting"
	// Running: the applet has started and checked in (or the Readiness
	// hook said it is ready).
	Running State = "Running"
	// Failed: a step failed; the session has been cleaned up. Terminal.
	Failed State = "Failed"
	// Closed: the session was closed (by Close, or because its context
	// ended) and cleaned up as asked. Terminal.
	Closed State = "Closed"
)

// Terminal reports whether no state follows s.
func (s State) Terminal() bool { return s == Failed || s == Closed }

// Step is what a session is doing, for display, and where a Failed
// session failed.
type Step string

// The steps, in the order a session goes through them.
const (
	StepAuthorize    Step = "authorize"    // the console's Authorize hook
	StepAuthenticate Step = "authenticate" // logon and admin checks
	StepCredentials  Step = "credentials"  // waiting for credentials: the technician's prompt, or Config.LocalAdmin (LAPS)
	StepPreflight    Step = "preflight"    // reading the target's settings
	StepDeploy       Step = "deploy"       // copying the applet
	StepLaunch       Step = "launch"       // starting it, launcher after launcher
	StepCheckin      Step = "checkin"      // waiting for the applet to check in
	StepCleanup      Step = "cleanup"      // stopping the applet, undoing the journal
)

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	// EventState is a change of state or of step. Every one is delivered.
	EventState EventKind = "state"
	// EventAttempt reports one launcher that failed (Method, Err,
	// Diagnosis); the session goes on with the next one or fails.
	EventAttempt EventKind = "attempt"
	// EventProgress reports bytes copied during StepDeploy. Progress
	// events may be coalesced: a reader that falls behind sees only the
	// latest one.
	EventProgress EventKind = "progress"
	// EventRefused reports a check-in attempt that the console refused
	// while the session waited for its applet: the session's token from
	// an address that is not the target's, or a wrong token from the
	// target's address. Peer is where it came from and Err (matching
	// ErrCheckinRefused) says why. The session goes on waiting for its
	// own applet. Every one is delivered, at most checkin.MaxRefusals
	// per session.
	EventRefused EventKind = "refused"
)

// Event is one thing that happened to a session. Events of a session
// arrive in the order they happened; see Session.Events for the delivery
// rules.
type Event struct {
	Kind    EventKind
	Session string // the session's ID
	Name    string // the computer's name as the console shows it
	Addr    string // the address connected to
	State   State
	Step    Step
	Time    time.Time
	// Method is the launcher's name once one is being tried.
	Method string
	// Err is set on EventAttempt and on the Failed event. It never
	// contains a secret.
	Err error
	// Diagnosis explains Err to a technician.
	Diagnosis diag.Diagnosis
	// Done and Total are the bytes copied and to copy (EventProgress).
	Done, Total int64
	// Peer is the address (ip:port) a refused check-in came from
	// (EventRefused).
	Peer string
	// Result is set on the events that end Connecting (Running, Failed,
	// Closed): a snapshot of the session's result.
	Result *Result
}

// Attempt is one launcher's failed try.
type Attempt struct {
	Launcher  string
	Err       error
	Diagnosis diag.Diagnosis
	Took      time.Duration
}

// Leftover is something cleanup could not undo.
type Leftover struct {
	What string
	Err  error
}

// Cleanup is what closing a session did and did not undo on the target.
type Cleanup struct {
	// Kept is true when the applet was left running and nothing was undone
	// on purpose (CloseOptions.Keep).
	Kept bool
	// AppletStopped reports that the applet was asked to stop and did.
	AppletStopped bool
	// Undone lists what was removed or restored, in the order it was done.
	Undone []string
	// Left lists what is still on the target, with why.
	Left []Leftover
}

// Clean reports whether nothing was left behind.
func (c Cleanup) Clean() bool { return !c.Kept && len(c.Left) == 0 }

// Result is what a session achieved. Fields that a session did not reach
// are zero.
type Result struct {
	Session string
	Host    discovery.Host
	Addr    string
	State   State
	// Step is the step a Failed session failed at.
	Step Step
	// Err is why the session failed or was closed early; nil otherwise.
	Err error
	// Diagnosis explains Err.
	Diagnosis diag.Diagnosis
	// Notes are warnings from the way (for example a preflight that could
	// not read the registry).
	Notes []diag.Diagnosis
	// Account is the account that was proved (no secret).
	Account string
	// Arch is the target's processor architecture as it reported it
	// (deploy.Target.Arch), read before deploying when the applet comes
	// in variants; empty otherwise. AppletArch is the variant copied
	// (deploy.Applet.Label: "386", "amd64", "arm64" or "default").
	Arch, AppletArch string
	// Transport is what carried the SMB session (adauth.Facts.Transport:
	// "tcp445" or "nbt139"); empty before authentication.
	Transport string
	// CredentialSource says where the proved credentials came from:
	// CredentialsGiven, CredentialsPrompted, or the source that
	// Config.LocalAdmin named (for LAPS: "laps-legacy", "laps-windows",
	// "laps-windows-encrypted").
	CredentialSource string
	// Auth is how the account logged on: "kerberos" or "ntlm"
	// (adauth.Facts.Auth); empty before authentication.
	Auth string
	// Method is the launcher that started the applet.
	Method string
	// Attempts lists the launchers that failed, in order.
	Attempts []Attempt
	// Preflight holds the preflight's findings, when it ran.
	Preflight *deploy.Preflight
	// Applet is what the applet said at check-in.
	Applet *checkin.Hello
	// Started, Ready and Ended are when Connect was called, when the
	// session reached Running, and when it reached Failed or Closed.
	Started, Ready, Ended time.Time
	// Cleanup reports the cleanup of a Failed or Closed session.
	Cleanup *Cleanup
}

// Values of Result.CredentialSource besides those of Config.LocalAdmin.
const (
	// CredentialsGiven: the console's current credentials
	// (Config.Credentials, SetCredentials).
	CredentialsGiven = "given"
	// CredentialsPrompted: credentials a prompt supplied.
	CredentialsPrompted = "prompt"
)

// Errors of the session. An *Error matches one of them with errors.Is
// where it applies, and its cause too.
var (
	// ErrUnauthorized: the console's Authorize hook refused the Connect.
	ErrUnauthorized = errors.New("session: connect not authorised")
	// ErrNoLauncher: no launcher is configured, or none is available.
	ErrNoLauncher = errors.New("session: no launcher available")
	// ErrLaunchFailed: every launcher tried failed; Result.Attempts says
	// why each did.
	ErrLaunchFailed = errors.New("session: every launcher failed")
	// ErrCheckin: the applet was launched but did not check in in time.
	ErrCheckin = errors.New("session: applet did not check in")
	// ErrAppletLost: the applet's connection ended while Running.
	ErrAppletLost = errors.New("session: applet connection lost")
	// ErrClosed: the session was closed before it reached Running.
	ErrClosed = errors.New("session: closed")
	// ErrBadConfig: the Config is unusable.
	ErrBadConfig = errors.New("session: invalid configuration")
	// ErrNoAddress: the host has no address or name to connect to.
	ErrNoAddress = errors.New("session: host has no address")
	// ErrCheckinRefused: the console refused a check-in attempt for the
	// session (EventRefused).
	ErrCheckinRefused = errors.New("session: check-in refused")
	// ErrPanic: a step panicked, typically a protocol decoder of a
	// third-party library (go-smb2, go-msrpc) on a hostile server's
	// answer. The panic fails this session only; its cleanup still runs.
	ErrPanic = errors.New("session: a step panicked")
)

// Error is a failed step of a session.
type Error struct {
	// Name is the computer's name as the console shows it.
	Name string
	Step Step
	// Kind is one of this package's sentinel errors, or nil when the
	// cause (an *adauth.AuthError, a *deploy.LaunchError, ...) says it.
	Kind      error
	Diagnosis diag.Diagnosis
	Err       error
}

// Error returns "session HOST: step: kind: cause", the kind without its
// "session: " package prefix. %+v prints the cause's raw chain (connect
// -v and its NDJSON "error").
func (e *Error) Error() string { return e.text(false) }

// Format prints Error for %v and %s (quoted for %q), and the raw chain
// for %+v.
func (e *Error) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", e.text(false))
		return
	}
	io.WriteString(f, e.text(verb == 'v' && f.Flag('+')))
}

// Diagnose returns the diagnosis (diag.Diagnoser).
func (e *Error) Diagnose() diag.Diagnosis { return e.Diagnosis }

func (e *Error) text(raw bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "session %s: %s", e.Name, e.Step)
	if e.Kind != nil {
		fmt.Fprintf(&b, ": %s", strings.TrimPrefix(e.Kind.Error(), "session: "))
	}
	if e.Err != nil && !errors.Is(e.Kind, e.Err) {
		if raw {
			fmt.Fprintf(&b, ": %+v", e.Err)
		} else {
			fmt.Fprintf(&b, ": %v", e.Err)
		}
	}
	return b.String()
}

// Unwrap returns the kind and the cause.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// Readiness decides, instead of the check-in, that a launched applet is
// ready: it returns nil once it is, or an error. A vendor with its own
// back channel sets Config.Readiness to it.
type Readiness func(ctx context.Context, t *deploy.Target, h deploy.Handle) error
