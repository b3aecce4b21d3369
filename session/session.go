package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session/checkin"
)

// Session is one Connect to one host. It is created in Connecting and
// driven by a goroutine of its own; its methods are safe for concurrent
// use.
type Session struct {
	c     *Client
	opts  ConnectOptions
	id    string
	host  discovery.Host
	name  string
	addr  string   // the address in use; s.mu guards it once run starts
	addrs []string // the addresses to try, in order (adauth.AddrsOf)
	log   *slog.Logger
	out   *outbox
	tmo   Timeouts
	begun time.Time

	// set by the run goroutine only
	target deploy.Target
	// journalPath is the file the session's journal is persisted to, or
	// "" when it is in memory.
	journalPath string
	handle      deploy.Handle
	// launchCancel ends the context the handle was launched with; end
	// calls it after cleanup.
	launchCancel context.CancelFunc
	conn         *checkin.Conn
	pending      *checkin.Pending
	// wrongPeer is the first address that presented this session's
	// ticket and was refused for it.
	wrongPeer atomic.Pointer[string]

	closeReq  chan struct{}
	closeOnce sync.Once
	closeOpts CloseOptions
	ready     chan struct{} // closed on Running, Failed or Closed
	done      chan struct{} // closed on Failed or Closed
	workStop  context.CancelFunc
	// clientClosed: Connect was called after Client.Close.
	clientClosed bool
	// checking: the session is Client.Check's, which launches nothing,
	// so no check-in address is needed.
	checking bool

	mu     sync.Mutex
	state  State
	step   Step
	method string
	res    Result
}

// CloseOptions say how Close treats the applet.
type CloseOptions struct {
	// Keep leaves the applet running and undoes nothing: the journal's
	// changes stay on the target, and the check-in connection stays open
	// (Session.Conn returns it; the caller closes it). The grant's SMB
	// session is closed.
	Keep bool
}

// ConnectOptions are the settings of one session (ConnectWith).
type ConnectOptions struct {
	// Prompt, when set, asks for this session's credentials instead of
	// Config.Prompt. It is still joined with the other sessions' prompts
	// under the Client's lockout guard (see Config.Prompt): when it is
	// the first to be needed for a refusal, its answer also goes to the
	// other sessions waiting on that refusal; when another session's
	// prompt for the same refusal is already open, this one is not asked
	// and the session gets that prompt's answer.
	Prompt adauth.PromptFunc
	// Technician names who connects, for Config.Authorize and the log.
	Technician string
}

// Connect is ConnectWith with no options.
func (c *Client) Connect(ctx context.Context, host discovery.Host) *Session {
	return c.ConnectWith(ctx, host, ConnectOptions{})
}

// ConnectWith starts a session to host and returns it at once, in
// Connecting. Its goroutine authorizes, authenticates (prompting through
// o.Prompt or Config.Prompt while the step is StepCredentials), runs the
// preflight, deploys the applet, tries the launchers in order and waits
// for the applet to check in, then the session is Running. A failure at
// any step cleans up and ends the session in Failed.
//
// ctx bounds Connecting only, as a request's context bounds a dial: when
// it ends during Connecting the session fails (after its cleanup), and
// once the session is Running ctx no longer matters: a request's context
// may be passed. The session then lives until Session.Close, Client.Close
// or Client.Shutdown, or until its applet's connection ends. Values of
// ctx (a trace ID, for instance) reach the steps and the cleanup.
//
// After Client.Close, the session fails at once with ErrClientClosed.
func (c *Client) ConnectWith(ctx context.Context, host discovery.Host, o ConnectOptions) *Session {
	s := c.newSession(host, "session")
	s.opts = o
	if o.Technician != "" {
		s.log = s.log.With("technician", o.Technician)
	}
	first := StepAuthenticate
	if c.cfg.Authorize != nil {
		first = StepAuthorize
	}
	s.step = first
	s.emitState()
	work, stop := context.WithCancel(ctx)
	s.workStop = stop
	s.clientClosed = !c.track(s)
	go s.run(ctx, work)
	return s
}

// newSession returns a session of c to host in Connecting, not yet
// started; its log lines name it as kind ("session", "check").
func (c *Client) newSession(host discovery.Host, kind string) *Session {
	s := &Session{
		c: c, host: discovery.Clone(host), log: c.log, tmo: c.timeouts(),
		begun: time.Now(), closeReq: make(chan struct{}), ready: make(chan struct{}), done: make(chan struct{}),
		state: Connecting,
	}
	s.out = newOutbox(c.eventBound())
	s.id = newID()
	s.addrs = adauth.AddrsOf(host)
	s.addr = hostAddr(host)
	s.name = hostName(host)
	s.log = c.log.With(kind, s.id, "host", s.name)
	s.res = Result{Session: s.id, Host: s.host, Addr: s.addr, State: Connecting, Started: s.begun}
	s.target = deploy.Target{Session: s.id, Host: s.host, Addr: s.addr}
	return s
}

// eventBound is the most events a session of c can send that are not
// progress events: every state and step change (a step per prompt and
// per launcher), an attempt per launcher and at most
// checkin.MaxRefusals refused check-ins.
func (c *Client) eventBound() int {
	prompts := c.cfg.MaxPrompts
	if prompts == 0 {
		prompts = adauth.DefaultMaxPrompts
	}
	prompts = max(prompts, 0)
	// Connecting, authenticate after authorize, preflight, deploy,
	// launch with no launcher, checkin, Running, cleanup, the final
	// state: 9, and a margin.
	return 12 + 2*prompts + 2*len(c.cfg.Launchers) + checkin.MaxRefusals
}

// ID returns the session's identifier, unique per Client.
func (s *Session) ID() string { return s.id }

// Host returns the host the session connects to.
func (s *Session) Host() discovery.Host { return discovery.Clone(s.host) }

// State returns the session's state and step now.
func (s *Session) State() (State, Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.step
}

// Result returns a snapshot of what the session has achieved so far.
func (s *Session) Result() Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot()
}

// ErrNoConn: Session.Conn found no check-in connection: the session is
// not Running (and was not closed with CloseOptions.Keep), or it uses
// Config.Readiness instead of the check-in.
var ErrNoConn = errors.New("session: no check-in connection")

// Conn returns the applet's check-in connection once the session is
// Running (or was closed with CloseOptions.Keep, when the caller owns
// it). It waits while the session is Connecting, until ctx ends (then it
// returns ctx.Err()); pass a done context to ask without waiting. It
// returns ErrNoConn, with the session's error when it failed, otherwise.
// The connection belongs to the session unless kept: do not close it.
func (s *Session) Conn(ctx context.Context) (*checkin.Conn, error) {
	select {
	case <-s.ready:
	default:
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if (s.state == Running || s.closeOpts.Keep) && s.conn != nil {
		return s.conn, nil
	}
	if s.res.Err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoConn, s.res.Err)
	}
	return nil, ErrNoConn
}

// Events returns the channel of the session's events.
//
// Delivery rules:
//   - The session owns the channel and closes it after its final event,
//     Failed or Closed. The first event is Connecting.
//   - Events arrive in the order they happened. Every EventState and
//     EventAttempt is delivered; consecutive EventProgress events may be
//     coalesced into the latest one.
//   - A slow reader never blocks the session's work, nor any other
//     session: events wait in a per-session queue in memory (a session has
//     few of them).
//   - Delivery starts at the first call; a session whose events are never
//     asked for starts no goroutine for them. The channel's buffer has
//     room for every event but progress events, so the delivery
//     goroutine ends when the session does, whether anyone reads or not:
//     it puts the events still queued in the buffer and closes the
//     channel. A reader may stop reading at any time; what it did not
//     read is garbage once the Session is.
//
// Every call returns the same channel: share it, or give it to one reader.
func (s *Session) Events() <-chan Event { return s.out.ch() }

// Ready returns a channel closed when the session leaves Connecting
// (Running, Failed or Closed).
func (s *Session) Ready() <-chan struct{} { return s.ready }

// Done returns a channel closed when the session is Failed or Closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Wait waits until the session leaves Connecting, or ctx is done, and
// returns its result. The result's State says which; Err is the failure.
func (s *Session) Wait(ctx context.Context) (Result, error) {
	select {
	case <-s.ready:
		return s.Result(), nil
	case <-ctx.Done():
		return s.Result(), ctx.Err()
	}
}

// Close ends the session: when it is Connecting, its current step is
// cancelled; then the applet is stopped (the check-in connection's Stop,
// then the launcher handle's Stop) and the journal is undone newest first,
// and the session is Closed. The returned Cleanup says what was and was
// not undone. Close on a Failed session returns the cleanup that the
// failure ran. It is safe to call more than once; later calls return the
// first outcome. Close waits for the cleanup, or returns ctx.Err() when
// ctx ends first (the cleanup then goes on in the background, bounded by
// Timeouts.Cleanup).
func (s *Session) Close(ctx context.Context) (Cleanup, error) {
	return s.CloseWith(ctx, CloseOptions{})
}

// CloseWith is Close with options.
func (s *Session) CloseWith(ctx context.Context, o CloseOptions) (Cleanup, error) {
	s.requestClose(o)
	select {
	case <-s.done:
	case <-ctx.Done():
		return Cleanup{}, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.res.Cleanup == nil {
		return Cleanup{}, nil
	}
	return *s.res.Cleanup, nil
}

// requestClose starts closing the session, once.
func (s *Session) requestClose(o CloseOptions) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closeOpts = o
		s.mu.Unlock()
		close(s.closeReq)
		s.workStop()
	})
}

func (s *Session) closing() bool {
	select {
	case <-s.closeReq:
		return true
	default:
		return false
	}
}

// snapshot copies the result; s.mu is held.
func (s *Session) snapshot() Result {
	r := s.res
	r.Host = discovery.Clone(r.Host)
	r.Notes = append([]diag.Diagnosis(nil), r.Notes...)
	r.Attempts = append([]Attempt(nil), r.Attempts...)
	if r.Preflight != nil {
		p := *r.Preflight
		p.Unknown = append([]string(nil), p.Unknown...)
		r.Preflight = &p
	}
	if r.Applet != nil {
		h := *r.Applet
		r.Applet = &h
	}
	if r.Cleanup != nil {
		c := *r.Cleanup
		c.Undone = append([]string(nil), c.Undone...)
		c.Left = append([]Leftover(nil), c.Left...)
		r.Cleanup = &c
	}
	return r
}

func (s *Session) event(k EventKind) Event {
	return Event{Kind: k, Session: s.id, Name: s.name, Addr: s.addr, State: s.state, Step: s.step, Time: time.Now(), Method: s.method}
}

// emitState queues the current state and step; s.mu must not be held.
func (s *Session) emitState() {
	s.mu.Lock()
	e := s.event(EventState)
	s.mu.Unlock()
	s.out.push(e, false)
}

// setStep moves to step (and method, when not empty) and says so.
func (s *Session) setStep(step Step, method string) {
	s.mu.Lock()
	s.step = step
	if method != "" {
		s.method = method
	}
	e := s.event(EventState)
	s.mu.Unlock()
	s.log.Debug("step", "state", e.State, "step", step, "method", e.Method)
	s.out.push(e, false)
}

func (s *Session) progress(done, total int64) {
	s.mu.Lock()
	if s.step != StepDeploy {
		// A Deployer that reports after Deploy returned: dropped, so
		// that progress events stay in one run (see outbox).
		s.mu.Unlock()
		return
	}
	e := s.event(EventProgress)
	s.mu.Unlock()
	e.Done, e.Total = done, total
	s.out.push(e, false)
}

func (s *Session) attemptFailed(a Attempt) {
	s.mu.Lock()
	s.res.Attempts = append(s.res.Attempts, a)
	e := s.event(EventAttempt)
	s.mu.Unlock()
	e.Method, e.Err, e.Diagnosis = a.Launcher, a.Err, a.Diagnosis
	s.out.push(e, false)
}

func (s *Session) note(d diag.Diagnosis) {
	s.mu.Lock()
	s.res.Notes = append(s.res.Notes, d)
	s.mu.Unlock()
}

// run drives the session; it is the only goroutine that changes state.
func (s *Session) run(parent, work context.Context) {
	defer s.workStop()
	err := s.connectSafely(work)
	if err != nil {
		s.end(parent, err)
		return
	}
	s.mu.Lock()
	s.state, s.res.State, s.res.Ready = Running, Running, time.Now()
	e := s.event(EventState)
	r := s.snapshot()
	e.Result = &r
	s.mu.Unlock()
	s.log.Info("running", "method", e.Method, "took", time.Since(s.begun))
	s.out.push(e, false)
	close(s.ready)

	var lost <-chan struct{}
	if s.conn != nil {
		lost = s.conn.Done()
	}
	// parent bounded Connecting only: from here on, only Close (the
	// session's or the Client's) or the applet's end stop the session.
	select {
	case <-s.closeReq:
		s.end(parent, nil)
	case <-lost:
		if s.closing() {
			s.end(parent, nil)
			return
		}
		cause := s.conn.Err()
		if cause == nil {
			cause = checkin.ErrClosed
		}
		s.end(parent, &Error{Name: s.name, Step: StepCheckin, Kind: ErrAppletLost, Err: cause, Diagnosis: diag.Diagnosis{
			Code: diag.AppletLost, Summary: "The applet stopped or lost its connection to the console.",
			Fix: "Check the applet's log on the target; reconnect to start it again."}})
	}
}

// connectSafely runs connect and turns a panic in it (in this goroutine)
// into the session's failure.
func (s *Session) connectSafely(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.panicErr(r)
		}
	}()
	return s.connect(ctx)
}

// panicErr is the failure of a step that panicked. The panic value is a
// library's runtime error; it carries no credentials.
func (s *Session) panicErr(r any) error {
	s.mu.Lock()
	step := s.step
	s.mu.Unlock()
	s.log.Error("step panicked", "step", step, "panic", fmt.Sprint(r))
	return &Error{Name: s.name, Step: step, Kind: ErrPanic, Err: fmt.Errorf("%v", r), Diagnosis: diag.Diagnosis{
		Code: diag.Panic, Summary: "The connection to " + s.name + " failed on an answer that a protocol library could not handle (the computer may be hostile or broken).",
		Fix: "Check the computer; other sessions are not affected."}}
}

// end cleans up and moves to Failed (err from a step) or Closed (Close
// was called, or the context ended).
func (s *Session) end(parent context.Context, err error) {
	s.mu.Lock()
	failStep := s.step
	keep := s.closeOpts.Keep
	wasRunning := s.state == Running
	s.mu.Unlock()
	closed := s.closing()
	if closed && !wasRunning {
		err = &Error{Name: s.name, Step: failStep, Kind: ErrClosed, Err: err}
	}
	keep = keep && s.closing()
	s.setStep(StepCleanup, "")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(parent), s.tmo.Cleanup)
	cl := s.cleanupSafely(cctx, keep)
	cancel()
	if s.launchCancel != nil {
		s.launchCancel()
	}

	var d diag.Diagnosis
	if !closed {
		d = s.diagnose(failStep, err)
	}
	s.mu.Lock()
	s.res.Cleanup = &cl
	s.res.Ended = time.Now()
	if closed {
		s.state, s.res.State = Closed, Closed
		if err != nil && !wasRunning {
			s.res.Err, s.res.Step = err, failStep
		}
	} else {
		s.state, s.res.State = Failed, Failed
		s.res.Step, s.res.Err, s.res.Diagnosis = failStep, wrapStep(s.name, failStep, err, d), d
		s.step = failStep
	}
	e := s.event(EventState)
	if s.state == Failed {
		e.Err, e.Diagnosis = s.res.Err, s.res.Diagnosis
	}
	r := s.snapshot()
	e.Result = &r
	s.mu.Unlock()
	if e.State == Failed {
		s.log.Warn("failed", "step", e.Step, "err", e.Err, "diagnosis", e.Diagnosis.Code, "left", len(cl.Left))
	} else {
		s.log.Info("closed", "left", len(cl.Left), "kept", cl.Kept)
	}
	s.out.push(e, true)
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	s.c.forget(s)
	close(s.done)
}

func wrapStep(name string, step Step, err error, d diag.Diagnosis) error {
	var se *Error
	if errors.As(err, &se) {
		if se.Diagnosis.IsZero() {
			se.Diagnosis = d
		}
		return se
	}
	return &Error{Name: name, Step: step, Err: err, Diagnosis: d}
}

// cleanup stops the applet and undoes the journal, unless keep.
// cleanupSafely runs cleanup; a panic in it (a decoder on a hostile
// answer) ends the cleanup of this session only and is reported as what
// is left.
func (s *Session) cleanupSafely(ctx context.Context, keep bool) (cl Cleanup) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("cleanup panicked", "panic", fmt.Sprint(r))
			cl.Left = append(cl.Left, Leftover{What: "cleanup of " + s.name, Err: fmt.Errorf("%w: %v", ErrPanic, r)})
		}
	}()
	return s.cleanup(ctx, keep)
}

func (s *Session) cleanup(ctx context.Context, keep bool) Cleanup {
	var cl Cleanup
	if s.pending != nil {
		s.pending.Cancel()
	}
	if keep {
		cl.Kept = true
		_ = s.target.Grant.Close()
		return cl
	}
	if s.conn != nil {
		sctx, cancel := context.WithTimeout(ctx, s.tmo.Cleanup/4)
		err := s.conn.Stop(sctx)
		cancel()
		if err == nil {
			cl.AppletStopped = true
		} else {
			s.log.Debug("applet stop over check-in", "err", err)
		}
		// An applet that said goodbye exits on its own: its launcher
		// must not kill it by a process ID that may be reused.
		if n, ok := s.handle.(deploy.ExitNotifier); ok && s.conn.SaidGoodbye() {
			n.AppletExited()
		}
		_ = s.conn.Close()
	}
	if s.handle != nil {
		hctx, cancel := context.WithTimeout(ctx, s.tmo.Cleanup/2)
		err := within(hctx, s.handle.Stop)
		cancel()
		if err != nil {
			cl.Left = append(cl.Left, Leftover{What: "applet launched by " + s.method, Err: err})
		} else {
			cl.AppletStopped = true
			cl.Undone = append(cl.Undone, "applet stopped ("+s.method+")")
		}
	}
	if s.target.Journal != nil {
		ch := make(chan Cleanup, 1)
		err := within(ctx, func(ctx context.Context) error {
			ch <- s.c.undoJournal(ctx, s.target.Journal, s.journalPath, s.target.Grant)
			return nil
		})
		var u Cleanup
		if err != nil {
			u = Cleanup{Left: []Leftover{{What: "the journal's changes (undo did not finish)", Err: err}}}
		} else {
			u = <-ch
		}
		cl.Undone = append(cl.Undone, u.Undone...)
		cl.Left = append(cl.Left, u.Left...)
	}
	_ = s.target.Grant.Close()
	return cl
}

// within runs f and returns its error, or ctx's error as soon as ctx
// ends: a step that ignores its context (a hung RPC) cannot hold the
// session past its deadline. f then finishes in the background.
func within(ctx context.Context, f func(context.Context) error) error {
	done := make(chan error, 1)
	go func() {
		// A panic in f (a decoder on a hostile answer) fails the step,
		// not the process.
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("%w: %v", ErrPanic, r)
			}
		}()
		done <- f(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w (still running in the background)", context.Cause(ctx))
	}
}

// connect runs the steps up to the applet's readiness.
func (s *Session) connect(ctx context.Context) error {
	cfg := &s.c.cfg
	if s.clientClosed {
		return s.closedErr()
	}
	if cfg.Authorize != nil {
		if err := cfg.Authorize(ctx, s.opts.Technician, discovery.Clone(s.host)); err != nil {
			return &Error{Name: s.name, Step: StepAuthorize, Kind: ErrUnauthorized, Err: err, Diagnosis: diag.Diagnosis{
				Code: diag.NotAuthorised, Summary: "The console does not allow this technician to connect to " + s.name + ".",
				Fix: "Ask an administrator of the console for the Connect On LAN permission."}}
		}
		s.setStep(StepAuthenticate, "")
	}
	if s.addr == "" {
		return s.noAddressErr()
	}
	if cfg.Authenticator == nil || cfg.Deployer == nil {
		return &Error{Name: s.name, Step: StepAuthenticate, Kind: ErrBadConfig, Err: errors.New("Config.Authenticator and Config.Deployer are required")}
	}
	if err := s.resolve(ctx); err != nil {
		return err
	}
	// The applet must be able to dial the console back: a loopback
	// check-in address for a remote target fails here, before anything
	// is sent to it. (A name is checked once authenticated.)
	if a, err := netip.ParseAddr(s.currentAddr()); err == nil {
		if _, err := s.checkinAddr(a, StepAuthenticate); err != nil {
			return err
		}
	}
	// The computer must answer under the name the technician chose before
	// any credentials go to it (checked by the authenticator on the NTLM
	// challenge); launchers may check their own connections with it too.
	if n := expectedName(s.host); n != "" {
		ctx = adauth.WithExpectedName(ctx, n)
	}
	// Kerberos names the computer's services by its DNS name, which
	// discovery or DNS gave; the address dialled may be an IP address.
	if n := s.host.DNSName; n != "" && !isAddrLiteral(n) {
		ctx = adauth.WithDNSName(ctx, n)
	}

	// 1. authenticate, prompting while ShouldPrompt allows.
	// The Client's lockout guard: credentials go to one host first, and
	// refused ones to no other host (adauth.LockoutGuard).
	current := s.c.Credentials()
	ask := cfg.Prompt
	if s.opts.Prompt != nil {
		ask = s.opts.Prompt
	}
	actx, cancel := withTimeout(ctx, s.tmo.Authenticate)
	// The lockout guard wraps the trial of every trusted address, so
	// that it counts as one logon attempt of these credentials.
	grant, source, err := s.authenticate(actx, s.c.guard.Wrap(&addrAuth{s: s, a: cfg.Authenticator}), current, ask)
	cancel()
	if err != nil {
		return err
	}
	s.target.Grant = grant
	if a := grant.RemoteAddr(); a.IsValid() {
		// A name's address is known now; nothing was created yet.
		if _, err := s.checkinAddr(a, StepAuthenticate); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.res.Account = grant.Credentials.Account()
	s.res.Transport = grant.Facts.Transport
	s.res.CredentialSource = source
	s.res.Auth = grant.Facts.Auth
	s.mu.Unlock()
	// Only a prompt's answer is remembered: a computer's own local
	// administrator password (LAPS) never goes to another computer.
	if cfg.RememberCredentials && source == CredentialsPrompted && !sameCredentials(grant.Credentials, current) {
		s.c.SetCredentials(grant.Credentials)
	}
	{
		j, path, err := s.c.newJournal(s.id)
		if err != nil {
			return &Error{Name: s.name, Step: StepAuthenticate, Err: fmt.Errorf("journal: %w", err), Diagnosis: diag.Diagnosis{
				Code: diag.Journal, Summary: "The session's cleanup journal could not be created.", Fix: "Check the journal directory of the console."}}
		}
		s.target.Journal, s.journalPath = j, path
	}

	// 2. preflight: findings and failures are notes.
	if cfg.Preflight != nil {
		s.setStep(StepPreflight, "")
		pctx, cancel := withTimeout(ctx, s.tmo.Preflight)
		p, err := cfg.Preflight.Preflight(pctx, &s.target)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p != nil {
			s.mu.Lock()
			s.res.Preflight = p
			s.mu.Unlock()
			for _, d := range preflightNotes(p, grant.Facts.LocalAccount) {
				s.note(d)
			}
		}
		if err != nil {
			s.log.Info("preflight failed", "err", err)
			s.note(diag.Diagnosis{Code: diag.PreflightFailed, Summary: "The target's settings could not be read through Remote Registry: " + err.Error(),
				Fix: "Start the Remote Registry service on the target, or ignore this if the launch works."})
		}
	}

	// 3. deploy: the applet's variant for the target's architecture, or
	// a failure before anything is copied.
	s.setStep(StepDeploy, "")
	if vd, ok := cfg.Deployer.(deploy.VariantDeployer); ok {
		if err := s.chooseApplet(ctx, vd.Variants()); err != nil {
			return err
		}
	}
	dctx, cancel := withTimeout(ctx, s.tmo.Deploy)
	path, err := cfg.Deployer.Deploy(dctx, &s.target, s.progress)
	cancel()
	if err != nil {
		return err
	}
	s.target.AppletPath = path

	// 4. launch.
	return s.launch(ctx)
}

// chooseApplet learns the target's architecture when the variants need
// it and checks that one of them fits, before anything is copied. The
// architecture comes from the preflight (Remote Registry's
// PROCESSOR_ARCHITECTURE), else from the Preflight of the first launcher
// that has one and answers (WMI's OSArchitecture). It records the
// architecture in the target and the result.
func (s *Session) chooseApplet(ctx context.Context, v deploy.Applets) error {
	cfg := &s.c.cfg
	if v.NeedsArch() {
		s.mu.Lock()
		var arch string
		if p := s.res.Preflight; p != nil {
			arch = p.Arch
		}
		s.mu.Unlock()
		if arch == "" {
			for _, l := range cfg.Launchers {
				pf, ok := l.(deploy.Preflighter)
				if !ok || sameStep(pf, cfg.Preflight) {
					continue
				}
				pctx, cancel := withTimeout(ctx, s.tmo.Preflight)
				p, err := pf.Preflight(pctx, &s.target)
				cancel()
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if p != nil && p.Arch != "" {
					arch = p.Arch
					s.log.Info("architecture read by a launcher", "launcher", l.Name(), "arch", arch)
					break
				}
				s.log.Info("launcher could not read the architecture", "launcher", l.Name(), "err", err)
			}
		}
		s.target.Arch = arch
	}
	a, err := v.Choose(s.target.Arch)
	s.mu.Lock()
	s.res.Arch = s.target.Arch
	if err == nil {
		s.res.AppletArch = a.Label()
	}
	s.mu.Unlock()
	return err
}

// sameStep reports whether a and b are the same plugin value, without
// panicking on values of types that cannot be compared.
func sameStep(a, b any) bool {
	if a == nil || b == nil || reflect.TypeOf(a) != reflect.TypeOf(b) || !reflect.TypeOf(a).Comparable() {
		return false
	}
	return a == b
}

func (s *Session) launch(ctx context.Context) error {
	cfg := &s.c.cfg
	if len(cfg.Launchers) == 0 {
		s.setStep(StepLaunch, "")
		return &Error{Name: s.name, Step: StepLaunch, Kind: ErrNoLauncher, Diagnosis: diag.Diagnosis{
			Code: diag.NoLauncher, Summary: "No launch method is available in this console.", Fix: "Configure a launcher (SCM or WMI)."}}
	}
	var writeTicket func(context.Context) error
	spec := deploy.LaunchSpec{
		Path: s.target.AppletPath, Args: append([]string(nil), cfg.AppletArgs...),
		SessionID: s.id, ServicePrefix: cfg.ServicePrefix,
		Params: cfg.AppletParams, Vendor: cfg.Vendor, Applet: cfg.AppletName,
	}
	var ticket checkin.Ticket
	var ticketFile []byte
	if cfg.Readiness == nil {
		if s.c.checkin == nil {
			return &Error{Name: s.name, Step: StepLaunch, Kind: ErrBadConfig, Err: errors.New("no check-in server and no Readiness")}
		}
		fd, ok := cfg.Deployer.(deploy.FileDeployer)
		if !ok {
			return &Error{Name: s.name, Step: StepLaunch, Kind: ErrBadConfig, Err: errors.New("the Deployer cannot write the check-in ticket file (it is not a deploy.FileDeployer), and the ticket must not go on the command line")}
		}
		opts := checkin.ExpectOptions{Refused: s.refused}
		if !cfg.CheckinFromAnyAddr {
			opts.Peers = s.targetAddrs()
			if len(opts.Peers) == 0 {
				return &Error{Name: s.name, Step: StepLaunch, Kind: ErrBadConfig, Err: fmt.Errorf("the address of %s is not known, so its check-in cannot be restricted to it; set Config.CheckinFromAnyAddr to accept any address", s.addr)}
			}
		}
		var target netip.Addr
		if as := s.targetAddrs(); len(as) > 0 {
			target = as[0]
		}
		dial, err := s.checkinAddr(target, StepLaunch)
		if err != nil {
			return err
		}
		p, err := s.c.checkin.ExpectWith(s.id, dial, opts)
		if err != nil {
			return &Error{Name: s.name, Step: StepLaunch, Err: fmt.Errorf("check-in ticket: %w", err)}
		}
		s.pending = p
		ticket = p.Ticket()
		ticketFile = ticket.FileContent()
		defer clear(ticketFile)
		name := s.id + ".ticket"
		// Each launcher gets the ticket file afresh: an applet that a
		// failed attempt started may have read (and removed) it.
		writeTicket = func(ctx context.Context) error {
			dctx, cancel := withTimeout(ctx, s.tmo.Deploy)
			defer cancel()
			_, err := fd.DeployFile(dctx, &s.target, name, ticketFile)
			return err
		}
		spec.Args = append(spec.Args, checkin.FileArgs(name)...)
	}
	var h deploy.Handle
	var last error
	for _, l := range cfg.Launchers {
		s.setStep(StepLaunch, l.Name())
		t0 := time.Now()
		if writeTicket != nil {
			if err := writeTicket(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return &Error{Name: s.name, Step: StepLaunch, Err: fmt.Errorf("writing the check-in ticket file: %w", err), Diagnosis: diag.Diagnosis{
					Code: diag.TicketFile, Summary: "The check-in ticket could not be written next to the applet on " + s.name + ".",
					Fix: "Check that the applet's folder on the target's ADMIN$ share is writable by this account."}}
			}
		}
		// The attempt's context ends on its timeout or when the session's
		// work is cancelled while it runs; after a success it stays
		// valid until the session is cleaned up, because a launcher may
		// tie its handle's connection to it (go-msrpc does).
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		var fired atomic.Bool
		stopAfter := context.AfterFunc(ctx, cancel)
		timer := time.AfterFunc(s.tmo.Launch, func() { fired.Store(true); cancel() })
		hh, err := l.Launch(lctx, &s.target, spec)
		stopAfter()
		timer.Stop()
		if err != nil || hh == nil {
			cancel()
		} else {
			s.launchCancel = cancel
		}
		if err == nil && hh == nil {
			err = &deploy.LaunchError{Launcher: l.Name(), Step: "launch", Err: errors.New("launcher returned no handle")}
		}
		if err == nil {
			h = hh
			s.mu.Lock()
			s.res.Method = l.Name()
			s.mu.Unlock()
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = asTimeout(l.Name(), "launch", fired.Load(), err)
		a := Attempt{Launcher: l.Name(), Err: err, Diagnosis: s.diagnose(StepLaunch, err), Took: time.Since(t0)}
		s.log.Info("launcher failed", "launcher", l.Name(), "err", err)
		s.attemptFailed(a)
		last = err
		next, ferr := s.fallback(ctx, a)
		if ferr != nil {
			return &Error{Name: s.name, Step: StepLaunch, Err: ferr}
		}
		if !next {
			return err
		}
	}
	if h == nil {
		return &Error{Name: s.name, Step: StepLaunch, Kind: ErrLaunchFailed, Err: last}
	}
	s.handle = h

	// 5. wait for the applet.
	s.setStep(StepCheckin, "")
	wctx, cancel := withTimeout(ctx, s.tmo.Checkin)
	defer cancel()
	if cfg.Readiness != nil {
		if err := cfg.Readiness(wctx, &s.target, h); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &Error{Name: s.name, Step: StepCheckin, Kind: ErrCheckin, Err: err}
		}
		return nil
	}
	conn, err := s.pending.Wait(wctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if peer := s.wrongPeer.Load(); peer != nil {
			return &Error{Name: s.name, Step: StepCheckin, Kind: ErrCheckin, Err: err, Diagnosis: diag.Diagnosis{
				Code:    diag.CheckinWrongAddress,
				Summary: fmt.Sprintf("A check-in with this session's ticket came from %s, not from the target's own address, and was refused.", *peer),
				Fix:     "If the target reaches the console through NAT, accept check-ins from any address (Config.CheckinFromAnyAddr); otherwise someone else holds the ticket: check the target."}}
		}
		return &Error{Name: s.name, Step: StepCheckin, Kind: ErrCheckin, Err: err, Diagnosis: diag.Diagnosis{
			Code: diag.CheckinTimeout,
			Summary: fmt.Sprintf("The applet was started by %s but did not check in with the console at %s within %v.",
				s.res.Method, ticket.Addr, s.tmo.Checkin),
			Fix: "Make sure the target can reach the console at " + ticket.Addr + " (firewall, -console address), and that the applet runs on this platform."}}
	}
	s.conn = conn
	s.mu.Lock()
	hello := conn.Hello
	s.res.Applet = &hello
	s.mu.Unlock()
	return nil
}

// noAddressErr is the failure of a session to a host with no address
// and no name.
func (s *Session) noAddressErr() error {
	return &Error{Name: s.name, Step: StepAuthenticate, Kind: ErrNoAddress, Diagnosis: diag.Diagnosis{
		Code: diag.NoAddress, Summary: "The host has no address or name to connect to.", Fix: "Wait until discovery has found its address."}}
}

// closedErr is the failure of a session started after Client.Close.
func (s *Session) closedErr() error {
	return &Error{Name: s.name, Step: s.step, Kind: ErrClientClosed, Diagnosis: diag.Diagnosis{
		Code: diag.ClientClosed, Summary: "The console's connection service was closed before this session started.",
		Fix: "Connect again once the console is running."}}
}

// asTimeout marks a launcher's failure as deploy.ErrTimeout when its
// deadline fired or a deadline ended it (a step of the launcher's own),
// unless it says so already. The launcher's own diagnosis (a filtered
// dynamic port, say) is kept.
func asTimeout(launcher, step string, fired bool, err error) error {
	if err == nil || !(fired || errors.Is(err, context.DeadlineExceeded)) || errors.Is(err, deploy.ErrTimeout) {
		return err
	}
	le := &deploy.LaunchError{Launcher: launcher, Step: step, Kind: deploy.ErrTimeout, Err: err}
	var inner *deploy.LaunchError
	if errors.As(err, &inner) {
		le.Diagnosis = inner.Diagnosis
	}
	return le
}

// currentAddr returns the address the session uses now.
func (s *Session) currentAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// setAddr makes addr the session's address.
func (s *Session) setAddr(addr string) {
	s.mu.Lock()
	s.addr = addr
	s.res.Addr, s.target.Addr = addr, addr
	s.mu.Unlock()
}

// addrAuth tries the session's addresses in order (the host's trusted
// addresses, see adauth.AddrsOf): when the computer is unreachable at
// one (adauth.ErrUnreachable: refused, filtered, no route, timeout), the
// same credentials go to the next. The address that answered is kept for
// later tries (a prompt's answer) and becomes the session's. Before an
// address is tried, the check-in address is checked against it.
type addrAuth struct {
	s *Session
	a adauth.Authenticator
	i int
}

func (x *addrAuth) Authenticate(ctx context.Context, addr string, cr adauth.Credentials) (*adauth.Grant, error) {
	s := x.s
	addrs := s.addrs
	if len(addrs) == 0 {
		addrs = []string{addr}
	}
	for {
		a := addrs[x.i]
		if ip, err := netip.ParseAddr(a); err == nil {
			if _, err := s.checkinAddr(ip, StepAuthenticate); err != nil {
				return nil, err
			}
		}
		s.setAddr(a)
		g, err := x.a.Authenticate(ctx, a, cr)
		if err == nil || !errors.Is(err, adauth.ErrUnreachable) || x.i == len(addrs)-1 || ctx.Err() != nil {
			return g, err
		}
		s.log.Info("unreachable at this address, trying the host's next trusted address", "addr", a, "next", addrs[x.i+1], "err", err)
		x.i++
	}
}

// checkinAddr returns the check-in address to give the applet on target
// (Client.checkinAddrFor), or "" when the check-in is not used. Its
// failure is the session's, at step.
func (s *Session) checkinAddr(target netip.Addr, step Step) (string, error) {
	if s.checking || s.c.cfg.Readiness != nil || s.c.checkin == nil {
		return "", nil
	}
	a, err := s.c.checkinAddrFor(target)
	if err != nil {
		return "", &Error{Name: s.name, Step: step, Kind: ErrBadConfig, Err: err, Diagnosis: diag.Diagnosis{
			Code:    diag.CheckinAddress,
			Summary: "The applet on " + s.name + " could not reach the console's check-in address (" + err.Error() + "). Nothing was started on it.",
			Fix:     "Set the console's address as the targets reach it (Config.ConsoleAddr, connect -console HOST:PORT), or listen on an address they can reach (Config.CheckinListen)."}}
	}
	return a, nil
}

// targetAddrs returns the target's own addresses, from which its applet
// checks in: the address the grant's SMB session is connected to, or
// else the session's address when it is an IP.
func (s *Session) targetAddrs() []netip.Addr {
	if a := s.target.Grant.RemoteAddr(); a.IsValid() {
		return []netip.Addr{a}
	}
	if a, err := netip.ParseAddr(s.currentAddr()); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	return nil
}

// refused turns a refused check-in into an EventRefused. It runs on the
// check-in server's goroutine and only queues the event.
func (s *Session) refused(r checkin.Refusal) {
	peer := r.Peer.String()
	if r.Reason == checkin.ReasonWrongPeer {
		s.wrongPeer.CompareAndSwap(nil, &peer)
	}
	s.log.Warn("check-in refused", "peer", peer, "reason", r.Reason)
	s.mu.Lock()
	e := s.event(EventRefused)
	s.mu.Unlock()
	e.Peer = peer
	e.Err = fmt.Errorf("%w from %s: %s", ErrCheckinRefused, peer, r.Reason)
	s.out.push(e, false)
}

// DefaultFallback is the Fallback used when Config.Fallback is nil. It
// tries the next launcher only when the attempt's error means that the
// method cannot work on this target: deploy.ErrLaunchUnsupported,
// deploy.ErrUnreachable, deploy.ErrTimeout, deploy.ErrNotServiceAware
// (or ErrNoLauncher). Any other failure ends the session:
// deploy.ErrAccessDenied above all (even when it matches one of those
// too), a credential problem, and deploy.ErrAttemptLeftBehind. It never
// returns an error.
func DefaultFallback(_ context.Context, a Attempt) (bool, error) {
	err := a.Err
	if errors.Is(err, deploy.ErrAttemptLeftBehind) || errors.Is(err, deploy.ErrAccessDenied) {
		return false, nil
	}
	for _, k := range []error{deploy.ErrLaunchUnsupported, deploy.ErrUnreachable, deploy.ErrTimeout, deploy.ErrNotServiceAware, ErrNoLauncher} {
		if errors.Is(err, k) {
			return true, nil
		}
	}
	return false, nil
}

// fallback asks Config.Fallback whether the next launcher is tried, except
// after an attempt that may have left its applet running: a second
// launcher would start another beside it, whatever the hook says.
func (s *Session) fallback(ctx context.Context, a Attempt) (bool, error) {
	if errors.Is(a.Err, deploy.ErrAttemptLeftBehind) {
		return false, nil
	}
	f := s.c.cfg.Fallback
	if f == nil {
		f = DefaultFallback
	}
	return f(ctx, a)
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func sameCredentials(a, b adauth.Credentials) bool {
	if a.Account() != b.Account() {
		return false
	}
	pa, oka := a.Password()
	pb, okb := b.Password()
	return oka == okb && pa == pb && string(a.NTHash()) == string(b.NTHash())
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "s" + hex.EncodeToString(b)
}

// hostAddr is where a session connects: see adauth.AddrOf (a
// trusted address first, then the first address, then the DNS name, then
// the NetBIOS name). A name is resolved later, with Config.Resolver.
func hostAddr(h discovery.Host) string { return adauth.AddrOf(h) }

func hostName(h discovery.Host) string {
	switch {
	case h.Name != "":
		return h.Name
	case h.DNSName != "":
		return h.DNSName
	case len(h.Addrs) > 0:
		return h.Addrs[0].String()
	}
	return "?"
}
