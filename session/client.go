package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session/checkin"
)

// Default settings used for zero Config fields.
const (
	DefaultConcurrency      = 8
	DefaultPreflightTimeout = 30 * time.Second
	DefaultDeployTimeout    = 5 * time.Minute
	DefaultLaunchTimeout    = 90 * time.Second
	DefaultCheckinTimeout   = 60 * time.Second
	DefaultCleanupTimeout   = 60 * time.Second
)

// Timeouts bound the steps of a session. Zero fields take the defaults
// above; Authenticate is unbounded when zero, since it includes the time
// a technician takes to answer the credential prompt (the Authenticator
// bounds its own network waits).
type Timeouts struct {
	Authenticate time.Duration
	Preflight    time.Duration
	Deploy       time.Duration
	// Launch bounds each launcher's attempt.
	Launch  time.Duration
	Checkin time.Duration
	Cleanup time.Duration
}

// Config says how a Client discovers hosts and connects to them. Only
// Authenticator, Deployer and Launchers are needed for Connect; only
// Discoverers for Hosts. New checks it (ErrBadConfig, naming the field):
// a Config that sets any of Authenticator, Deployer or Launchers must set
// Authenticator and Deployer; a Deployer used with the check-in (no
// Readiness) must be a deploy.FileDeployer; a Checkin server must be listening;
// AppletParams need Vendor and AppletName; no timeout or count may be
// negative.
type Config struct {
	// Discoverers feed Hosts (netbios, the AD directory, ...). The
	// Client runs them once for all its views (see Hosts), again only on
	// Rescan, never two runs at once.
	Discoverers []discovery.Discoverer

	// Authenticator proves the credentials are administrator on a host.
	// Connect puts the host's expected name in its context
	// (adauth.WithExpectedName), so adauth.SMBAuthenticator refuses a
	// computer that answers under another name before sending
	// credentials.
	// The Client runs it under an adauth.LockoutGuard of its own: until
	// credentials have logged on somewhere, one host at a time tries them,
	// and once a host refuses them (adauth.CredentialsRefused) no other
	// host of this Client sees them; those sessions fail with
	// adauth.ErrCredentialsRefused or wait for one shared prompt.
	Authenticator adauth.Authenticator
	// Resolver finds the address of a host that has a name but no
	// address (connect NAME). More than one answer fails the session with
	// ErrNameConflict (diagnosis name-conflict) before anything is sent.
	// Nil leaves the name to the Authenticator (the system resolver).
	// standard.Apply sets one that asks DNS first, then NetBIOS.
	Resolver Resolver
	// Credentials are the console's current credentials; zero means none
	// (the prompt is asked first). SetCredentials replaces them.
	Credentials adauth.Credentials
	// Prompt asks the technician for credentials when the current ones
	// are refused as a logon failure or as not administrator (the rule is
	// adauth.ShouldPrompt). Nil means never prompt. ConnectOptions.Prompt
	// replaces it for one session. Sessions whose credentials were
	// refused share one prompt (adauth.LockoutGuard.Prompt): a prompt is
	// asked once per refusal, not once per host, through the prompt of
	// the first session that needs it, and every session waiting on the
	// same refusal gets that answer, whatever its own prompt. Sessions
	// that must never share answers (technicians with accounts of their
	// own) need Clients of their own.
	Prompt adauth.PromptFunc
	// MaxPrompts bounds the prompts per Connect, as in
	// adauth.CredentialSource.
	MaxPrompts int
	// RememberCredentials makes credentials that a prompt supplied and
	// that were proved the console's current credentials, so that later
	// Connects (a bulk push, for instance) use them without asking.
	RememberCredentials bool
	// LocalAdmin, when set, supplies a computer's own local administrator
	// credentials (its LAPS password: package laps) when the current
	// credentials are refused on it as a logon failure or as not
	// administrator (adauth.ShouldPrompt's rule), before the prompt; with
	// LocalAdminFirst, before the current credentials. It is asked only
	// for a host with a name of its own (its NetBIOS or DNS name, not an
	// address), with that name, and its answer goes only to a computer
	// whose NTLM challenge announces that name. Its credentials are never
	// remembered, logged or journaled. When it fails and there is no
	// prompt, the session fails with its diagnosis (codes laps-*).
	LocalAdmin adauth.LocalAdminSource
	// LocalAdminFirst asks LocalAdmin before trying the current
	// credentials (a policy of using each computer's own account); when
	// it cannot help, the current credentials and the prompt follow.
	LocalAdminFirst bool

	// Authorize, when set, is asked before any packet is sent whether
	// the technician (ConnectOptions.Technician) may connect to host. An
	// error fails the session at StepAuthorize with ErrUnauthorized.
	Authorize func(ctx context.Context, who string, host discovery.Host) error

	// Preflight reads the target's settings; nil skips the step.
	// standard.Apply sets remotereg's launcher (deploy.Preflighter).
	Preflight deploy.Preflighter
	// Deployer copies the applet. Required for Connect. A session that
	// waits for the check-in (no Readiness) needs a deploy.FileDeployer.
	Deployer deploy.Deployer
	// Launchers are tried in order; Fallback decides after each failed
	// attempt whether the next one is tried (DefaultFallback: only when
	// the failure means the method cannot work on this target). A console
	// usually lists remotereg's launcher ("scm"), then wmi's; a vendor's
	// own deploy.Launcher goes here too.
	Launchers []deploy.Launcher
	// Fallback is asked after each failed launcher attempt whether the
	// next launcher is tried: true tries it, false ends the session with
	// the attempt's error, and an error ends the session with that error.
	// Nil means DefaultFallback. An attempt that may have left its applet
	// running (deploy.ErrAttemptLeftBehind) is never followed by another,
	// whatever Fallback would say: Fallback is not asked, since a second
	// launcher would start a second applet beside it.
	Fallback func(ctx context.Context, a Attempt) (bool, error)

	// JournalDir, when set, is an existing directory where each session's
	// journal (deploy.Target.Journal) is persisted as <session ID>.json,
	// created once the session has authenticated and removed when its
	// cleanup left nothing behind; a console that crashed can reload it
	// with deploy.OpenJournal and undo it (standard.Options.Undoers).
	// Empty keeps each journal in memory. A journal file is trusted
	// input: whoever can write the directory can make a later recovery
	// undo what the file names, so keep it private to the console.
	JournalDir string
	// UndoScope, when set, restricts what a session's cleanup undoes
	// (deploy.Scope): a journal with any entry outside it is not undone
	// at all, and each of its entries is reported in Cleanup.Left with an
	// error matching deploy.ErrOutOfScope. Nil undoes whatever the
	// journal names. standard.Apply sets it to Options.Scope.
	UndoScope deploy.Scope
	// Undoers are extra undo providers for a session's journal. Cleanup
	// undoes the journal with deploy.FileUndoers, then the Undoers of
	// every Launcher, the Preflight and the Deployer that implement
	// deploy.Undoer, then these (a later provider replaces an earlier
	// one's function for the same kind).
	Undoers []deploy.Undoer

	// Checkin is the server applets check in with. When nil and
	// Readiness is nil, New starts one listening on CheckinListen and
	// Client.Close stops it.
	Checkin *checkin.Server
	// CheckinListen is the address of the server New starts; empty
	// means "127.0.0.1:0", which only a target on this machine can reach.
	// An unspecified host ("0.0.0.0:0", ":0", "[::]:0") listens on every
	// interface: see ConsoleAddr.
	CheckinListen string
	// ConsoleAddr is the host:port that applets dial, as the targets see
	// the console; a port of 0 is replaced with the port the check-in
	// server listens on. Empty means the server's listen address, except
	// that an unspecified one (0.0.0.0, ::) is replaced, per session,
	// with this machine's address on the route to the target (found with
	// a UDP "connect", which sends nothing). A loopback address is never
	// given to a target that is not itself loopback: such a session fails
	// with ErrBadConfig (diagnosis "checkin-loopback") before anything is
	// sent to the target.
	ConsoleAddr string
	// CheckinFromAnyAddr accepts an applet's check-in from any address.
	// By default a check-in is accepted only from the address the
	// session connected to (the target's own), so that a ticket read on
	// the target or on the way is useless elsewhere. Set it when targets
	// reach the console through NAT.
	CheckinFromAnyAddr bool
	// Readiness replaces the check-in: the session is Running once it
	// returns nil.
	Readiness Readiness
	// AppletArgs are passed to the applet before the check-in ticket's
	// arguments (-ticket-file NAME: the ticket itself goes in a file
	// next to the applet, see FileDeployer). They are readable by local
	// users of the target: put no secret in them.
	AppletArgs []string
	// ServicePrefix names the services launchers create (see
	// deploy.LaunchSpec); empty means the launcher's default.
	ServicePrefix string
	// AppletParams are parameters a launcher may store on the target for
	// the applet (remotereg writes them under
	// HKLM\SOFTWARE\<Vendor>\<AppletName>\<session ID>, with a DACL for
	// SYSTEM and Administrators only where the server honours it, and the
	// journal removes them). Vendor and AppletName are required with
	// them. They must not be secrets: a server may ignore the DACL, and
	// the WMI launcher cannot store them at all.
	AppletParams       map[string]string
	Vendor, AppletName string

	// Timeouts bound the steps.
	Timeouts Timeouts
	// Concurrency bounds ConnectAll; 0 means DefaultConcurrency.
	Concurrency int
	// Logger receives one line per step and per failure; nil discards.
	// Credentials never appear in it.
	Logger *slog.Logger
}

// Client is a console's entry to the SDK: a live host list and Connect.
// Build one with New. It is safe for concurrent use.
//
// The Client owns its sessions: Close and Shutdown end them. It keeps
// track of the sessions that are not over, and forgets each once it is
// Failed or Closed.
type Client struct {
	cfg      Config
	log      *slog.Logger
	checkin  *checkin.Server
	ownCheck bool

	mu       sync.Mutex
	creds    adauth.Credentials
	sessions map[*Session]struct{} // not yet Failed or Closed
	closed   bool
	// guard keeps refused credentials away from the other hosts.
	guard adauth.LockoutGuard
	// scan is the current discovery (nil until Hosts or Rescan starts
	// one); scans counts the discoveries started.
	scan  *scan
	scans int
}

// New checks cfg and returns a Client. When cfg needs a check-in server
// and has none, New starts one (see Config.Checkin).
func New(cfg Config) (*Client, error) {
	c := &Client{cfg: cfg, log: cfg.Logger, creds: cfg.Credentials, sessions: map[*Session]struct{}{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	c.checkin = cfg.Checkin
	if c.checkin == nil && cfg.Readiness == nil && (cfg.Deployer != nil || len(cfg.Launchers) > 0) {
		addr := cfg.CheckinListen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		s := &checkin.Server{Addr: addr, Logger: cfg.Logger}
		if err := s.Listen(); err != nil {
			return nil, fmt.Errorf("%w: check-in server: %w", ErrBadConfig, err)
		}
		c.checkin, c.ownCheck = s, true
	}
	return c, nil
}

// check validates the configuration; see Config.
func (cfg *Config) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, a...))
	}
	if cfg.Concurrency < 0 {
		return bad("Config.Concurrency is negative")
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"Authenticate", cfg.Timeouts.Authenticate}, {"Preflight", cfg.Timeouts.Preflight}, {"Deploy", cfg.Timeouts.Deploy},
		{"Launch", cfg.Timeouts.Launch}, {"Checkin", cfg.Timeouts.Checkin}, {"Cleanup", cfg.Timeouts.Cleanup}} {
		if t.d < 0 {
			return bad("Config.Timeouts.%s is negative (%v)", t.name, t.d)
		}
	}
	if cfg.Authenticator != nil || cfg.Deployer != nil || len(cfg.Launchers) > 0 {
		if cfg.Authenticator == nil {
			return bad("Config.Authenticator is required to connect (with Deployer and Launchers)")
		}
		if cfg.Deployer == nil {
			return bad("Config.Deployer is required to connect (with Authenticator and Launchers)")
		}
		for i, l := range cfg.Launchers {
			if l == nil {
				return bad("Config.Launchers[%d] is nil", i)
			}
		}
		if _, ok := cfg.Deployer.(deploy.FileDeployer); !ok && cfg.Readiness == nil {
			return bad("Config.Deployer must be a deploy.FileDeployer when the check-in is used (Config.Readiness is nil): the ticket goes in a file, never on the command line")
		}
	}
	if cfg.Checkin != nil && cfg.Checkin.ListenAddr() == nil {
		return bad("Config.Checkin is not listening: call its Listen before New")
	}
	if len(cfg.AppletParams) > 0 && (cfg.Vendor == "" || cfg.AppletName == "") {
		return bad("Config.AppletParams need Config.Vendor and Config.AppletName")
	}
	if cfg.ConsoleAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.ConsoleAddr); err != nil {
			return bad("Config.ConsoleAddr %q: %v", cfg.ConsoleAddr, err)
		}
	}
	return nil
}

// ErrClientClosed is the Kind of the failure of a session that Connect
// started after the Client was closed.
var ErrClientClosed = errors.New("session: client closed")

// Close closes the Client: it starts closing every session that is not
// over (as Session.Close does, without waiting for their cleanup) and
// closes the check-in server that New started, at once; applets lose
// their check-in connection and their sessions stop them through their
// launchers' handles. It also stops the discovery (see Hosts): its
// discoverers are cancelled and its views closed. Later Connects return a
// session that fails at once with ErrClientClosed. Close does not wait for
// anything; Shutdown waits for the sessions' cleanup and the discoverers'
// return. It is safe to call more than once.
func (c *Client) Close() error {
	c.closeSessions()
	c.stopScan()
	if c.ownCheck {
		return c.checkin.Close()
	}
	return nil
}

// Shutdown closes the Client as Close does, but waits for every session's
// cleanup and for the discovery's discoverers to return (or for ctx)
// before it closes the check-in server, so that each applet is first
// asked to stop over its check-in connection. It returns
// ctx.Err() when ctx ended first; the sessions' cleanup then goes on in
// the background, bounded by Timeouts.Cleanup, and the check-in server is
// closed all the same.
func (c *Client) Shutdown(ctx context.Context) error {
	open := c.closeSessions()
	var err error
	if ended := c.stopScan(); ended != nil {
		select {
		case <-ended:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	for _, s := range open {
		select {
		case <-s.Done():
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	if c.ownCheck {
		if cerr := c.checkin.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// closeSessions marks the Client closed and starts closing its sessions;
// it returns them.
func (c *Client) closeSessions() []*Session {
	c.mu.Lock()
	c.closed = true
	open := make([]*Session, 0, len(c.sessions))
	for s := range c.sessions {
		open = append(open, s)
	}
	c.mu.Unlock()
	for _, s := range open {
		s.requestClose(CloseOptions{})
	}
	return open
}

// track registers s as live; it reports false when the Client is closed.
func (c *Client) track(s *Session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.sessions[s] = struct{}{}
	return true
}

func (c *Client) forget(s *Session) {
	c.mu.Lock()
	delete(c.sessions, s)
	c.mu.Unlock()
}

// liveSessions returns the number of sessions not yet over.
func (c *Client) liveSessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// CheckinAddr returns the address applets dial, or "" when the check-in
// is not used. When the check-in server listens on an unspecified address
// and Config.ConsoleAddr is empty, each session gives its applet this
// machine's address on the route to its target instead (see
// Config.ConsoleAddr).
func (c *Client) CheckinAddr() string {
	if c.checkin == nil || c.checkin.ListenAddr() == nil {
		return ""
	}
	return c.dialAddr()
}

func (c *Client) dialAddr() string {
	ln := c.checkin.ListenAddr().String()
	if c.cfg.ConsoleAddr == "" {
		return ln
	}
	h, p, err := net.SplitHostPort(c.cfg.ConsoleAddr)
	if err != nil {
		return c.cfg.ConsoleAddr
	}
	if p == "" || p == "0" {
		if _, lp, err := net.SplitHostPort(ln); err == nil {
			p = lp
		}
	}
	return net.JoinHostPort(h, p)
}

// checkinAddrFor returns the address that the applet on target dials:
// dialAddr, with an unspecified host replaced by this machine's address
// on the route to target (unless Config.ConsoleAddr says it). It fails
// when that address is loopback and target is not: the applet could not
// reach it, or worse, would reach whatever listens on its own loopback.
// A zero target is checked by the address alone.
func (c *Client) checkinAddrFor(target netip.Addr) (string, error) {
	addr := c.dialAddr()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	ip, err := netip.ParseAddr(h)
	if h == "" || err == nil && ip.IsUnspecified() {
		if c.cfg.ConsoleAddr != "" {
			return "", fmt.Errorf("Config.ConsoleAddr %s is not an address a target can dial", addr)
		}
		if !target.IsValid() {
			return "", fmt.Errorf("the check-in listens on %s and the target's address is not known, so the console's address towards it cannot be found", addr)
		}
		local, err := routeTo(target)
		if err != nil {
			return "", fmt.Errorf("the check-in listens on %s and no route to %s was found: %w", addr, target, err)
		}
		ip, h = local, local.String()
	}
	loopback := ip.IsValid() && ip.IsLoopback() || strings.EqualFold(h, "localhost")
	if loopback && target.IsValid() && !target.Unmap().IsLoopback() {
		return "", fmt.Errorf("the check-in address %s is loopback, which %s cannot reach", addr, target)
	}
	return net.JoinHostPort(h, p), nil
}

// routeTo returns this machine's address on the route to target. A UDP
// "connect" picks the route and sends nothing.
func routeTo(target netip.Addr) (netip.Addr, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(target.Unmap(), 445)))
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	if !local.IsValid() || local.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("no local address towards %s", target)
	}
	return local, nil
}

// SetCredentials replaces the console's current credentials for later
// Connects.
func (c *Client) SetCredentials(cr adauth.Credentials) {
	c.mu.Lock()
	c.creds = cr
	c.mu.Unlock()
}

// Credentials returns the console's current credentials.
func (c *Client) Credentials() adauth.Credentials {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.creds
}

func (c *Client) timeouts() Timeouts {
	t := c.cfg.Timeouts
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Preflight, DefaultPreflightTimeout)
	def(&t.Deploy, DefaultDeployTimeout)
	def(&t.Launch, DefaultLaunchTimeout)
	def(&t.Checkin, DefaultCheckinTimeout)
	def(&t.Cleanup, DefaultCleanupTimeout)
	return t
}
