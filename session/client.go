package session

import (
	"context"
	"fmt"
	"log/slog"
	"net"
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
// Discoverers for Hosts.
type Config struct {
	// Discoverers feed Hosts (netbios, the AD directory, ...).
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
	// adauth.ShouldPrompt). Nil means never prompt. Sessions whose
	// credentials were refused share one prompt (adauth.LockoutGuard.Prompt):
	// Prompt is called once per refusal, not once per host.
	Prompt adauth.PromptFunc
	// MaxPrompts bounds the prompts per Connect, as in
	// adauth.CredentialSource.
	MaxPrompts int
	// RememberCredentials makes credentials that a prompt supplied and
	// that were proved the console's current credentials, so that later
	// Connects (a bulk push, for instance) use them without asking.
	RememberCredentials bool

	// Authorize, when set, is asked before any packet is sent whether
	// the technician (see WithTechnician) may connect to host. An error
	// fails the session at StepAuthorize with ErrUnauthorized.
	Authorize func(ctx context.Context, who string, host discovery.Host) error

	// Preflight reads the target's settings; nil skips the step.
	// standard.Apply sets remotereg's launcher (deploy.Preflighter).
	Preflight deploy.Preflighter
	// Deployer copies the applet. Required for Connect. A session that
	// waits for the check-in (no Readiness) needs a deploy.FileDeployer.
	Deployer deploy.Deployer
	// Launchers are tried in order. The next one is tried only when an
	// attempt fails with an error that means the method cannot work on
	// this target: deploy.ErrLaunchUnsupported, deploy.ErrUnreachable,
	// deploy.ErrTimeout or deploy.ErrNotServiceAware. Any other failure
	// (deploy.ErrAccessDenied above all, a credential problem) ends the
	// session. A console usually lists remotereg's launcher ("scm"), then
	// wmi's; a vendor's own deploy.Launcher goes here too.
	Launchers []deploy.Launcher

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
	CheckinListen string
	// ConsoleAddr is the host:port that applets dial, as the targets see
	// the console. Empty means the check-in server's listen address; a
	// port of 0 is replaced with the port it listens on.
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
type Client struct {
	cfg      Config
	log      *slog.Logger
	checkin  *checkin.Server
	ownCheck bool
	stop     chan struct{}
	stopOnce sync.Once

	mu    sync.Mutex
	creds adauth.Credentials
	// guard keeps refused credentials away from the other hosts.
	guard adauth.LockoutGuard
}

// New checks cfg and returns a Client. When cfg needs a check-in server
// and has none, New starts one (see Config.Checkin).
func New(cfg Config) (*Client, error) {
	c := &Client{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), creds: cfg.Credentials}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("%w: negative concurrency", ErrBadConfig)
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

// Close stops the check-in server New started, and ends the delivery of
// events to readers that stopped reading. It does not close sessions:
// close them first.
func (c *Client) Close() error {
	c.stopOnce.Do(func() { close(c.stop) })
	if c.ownCheck {
		return c.checkin.Close()
	}
	return nil
}

// CheckinAddr returns the address applets dial, or "" when the check-in
// is not used.
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

// Hosts runs the discoverers and returns a live view of the merged hosts
// that match f (discovery.NewLiveView). The view's SetFilter changes the
// filter at any time, during the scan and after it: when every discoverer
// has returned, the view sends one discovery.Complete event and stays
// open until ctx is done, which is when its events channel is closed.
// Connect may be called for any host at any time, discovery running or
// not.
func (c *Client) Hosts(ctx context.Context, f discovery.Filter) *discovery.View {
	return discovery.NewLiveView(ctx, discovery.Merge(ctx, c.cfg.Discoverers...), f)
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
