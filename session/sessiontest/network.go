package sessiontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/session/checkin"
)

// KindFile is the kind of the journal entries a Network records for the
// files it deploys; its Undoers remove them.
const KindFile = "sessiontest.file"

// LauncherName is the name of a Network's launcher, as session events
// and results report it.
const LauncherName = "sessiontest"

// Computer is one fake Windows computer. Set its fields before adding it
// to a Network and do not change them afterwards; its methods are safe
// for concurrent use.
type Computer struct {
	// Name is the computer's NetBIOS name, for example "PC1".
	Name string
	// Domain is its workgroup or domain.
	Domain string
	// Addr is its address. It is only a label: nothing is sent to it.
	Addr netip.Addr
	// Accounts maps a user name (matched without its domain, ignoring
	// case) to the account's password and rights.
	Accounts map[string]Account
	// Unreachable makes every logon fail as if the computer's port 445
	// were filtered (adauth.ErrUnreachable).
	Unreachable bool
	// LaunchErr, when set, is what launching on this computer returns;
	// use a *deploy.LaunchError with a Kind to exercise the session's
	// fallback rules.
	LaunchErr error
	// NoCheckin makes the applet start and never check in, so that the
	// session fails at the check-in step.
	NoCheckin bool

	mu      sync.Mutex
	files   map[string][]byte // by local path
	applets map[uint32]*applet
	nextPID uint32
}

// Account is a user of a Computer.
type Account struct {
	Password string
	// Admin makes the account an administrator of the computer.
	Admin bool
}

// Host returns the computer as discovery reports it.
func (c *Computer) Host() discovery.Host {
	return discovery.Host{
		Name: c.Name, Domain: c.Domain, Addrs: []netip.Addr{c.Addr}, TrustedAddrs: []netip.Addr{c.Addr},
		Sources: []discovery.Source{discovery.SourceNetBIOS},
	}
}

// Files returns the local paths of the files the Network deployed to the
// computer and that are still there, sorted.
func (c *Computer) Files() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for p := range c.files {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Applets returns the number of fake applets running on the computer.
func (c *Computer) Applets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.applets)
}

// Network is a set of fake computers. It implements adauth.Authenticator,
// discovery.Discoverer, deploy.Deployer, deploy.FileDeployer,
// deploy.Launcher and deploy.Undoer; Apply wires it into a
// session.Config. Build it with NewNetwork, and Close it at the end of the
// test: Close stops the applets still running. It is safe for concurrent
// use.
type Network struct {
	mu        sync.Mutex
	computers []*Computer
	closed    bool
	wg        sync.WaitGroup
	logons    int
}

// NewNetwork returns a network of the given computers.
func NewNetwork(cs ...*Computer) *Network {
	return &Network{computers: cs}
}

// Apply sets the pieces of cfg that a Network provides: Authenticator,
// Discoverers, Deployer, Launchers (the Network's launcher alone), the
// check-in server's listen address (loopback, any port) and
// CheckinFromAnyAddr (the fake applets check in from loopback, not from
// their computer's label address). It leaves every other field alone.
func (n *Network) Apply(cfg *session.Config) {
	cfg.Authenticator = n
	cfg.Discoverers = []discovery.Discoverer{n}
	cfg.Deployer = n
	cfg.Launchers = []deploy.Launcher{n}
	cfg.CheckinListen = "127.0.0.1:0"
	cfg.ConsoleAddr = ""
	cfg.CheckinFromAnyAddr = true
}

// Logons returns how many logons were attempted on the network.
func (n *Network) Logons() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logons
}

// Close stops every applet still running and waits for them. It does not
// remove files: a test checks with Computer.Files what a session's
// cleanup left.
func (n *Network) Close() error {
	n.mu.Lock()
	n.closed = true
	cs := slices.Clone(n.computers)
	n.mu.Unlock()
	for _, c := range cs {
		c.mu.Lock()
		for _, a := range c.applets {
			a.stop()
		}
		c.mu.Unlock()
	}
	n.wg.Wait()
	return nil
}

// Computer returns the computer whose address or name is addr, or nil.
func (n *Network) Computer(addr string) *Computer {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.computers {
		if (c.Addr.IsValid() && c.Addr.String() == addr) || strings.EqualFold(c.Name, addr) {
			return c
		}
	}
	return nil
}

// Discover implements discovery.Discoverer: it sends every computer's
// Host and returns.
func (n *Network) Discover(ctx context.Context, out chan<- discovery.Host) error {
	n.mu.Lock()
	cs := slices.Clone(n.computers)
	n.mu.Unlock()
	for _, c := range cs {
		select {
		case out <- c.Host():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Authenticate implements adauth.Authenticator. The computer at addr
// checks the account: an unknown account or a wrong password is a logon
// failure, an account that is not Admin is adauth.ErrNotAdmin (both
// retryable, so the session prompts), and an Unreachable computer fails
// with adauth.ErrUnreachable. The grant it returns holds no connection.
func (n *Network) Authenticate(ctx context.Context, addr string, cr adauth.Credentials) (*adauth.Grant, error) {
	n.mu.Lock()
	n.logons++
	n.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := n.Computer(addr)
	if c == nil || c.Unreachable {
		return nil, &adauth.AuthError{Addr: addr, Step: adauth.StepConnect, Kind: adauth.ErrUnreachable,
			Diagnosis: diag.Diagnosis{Code: diag.FirewallFiltered, Summary: "No answer from " + addr + " on port 445 (sessiontest).",
				Fix: "Check that the computer is on and that File and Printer Sharing is allowed."}}
	}
	acct, ok := c.account(cr.User)
	pw, _ := cr.Password()
	switch {
	case !ok || acct.Password != pw:
		return nil, &adauth.AuthError{Addr: addr, Account: cr.Account(), Step: adauth.StepLogon, Kind: adauth.ErrLogonFailure, Retryable: true,
			Diagnosis: diag.Diagnosis{Code: diag.LogonFailure, Summary: c.Name + " refused the user name or password (sessiontest).",
				Fix: "Check the user name and password."}}
	case !acct.Admin:
		return nil, &adauth.AuthError{Addr: addr, Account: cr.Account(), Step: adauth.StepAdminShare, Kind: adauth.ErrNotAdmin, Retryable: true,
			Diagnosis: diag.Diagnosis{Code: diag.NotAdmin, Summary: cr.Account() + " is not an administrator of " + c.Name + " (sessiontest).",
				Fix: "Use an account of the computer's Administrators group."}}
	}
	return &adauth.Grant{Addr: addr, Credentials: cr, Facts: adauth.Facts{
		Dialect: "3.1.1", Transport: adauth.TransportTCP445, Signed: true, Encrypted: true, NegotiationValidated: true,
		Server: adauth.ServerInfo{NetBIOSName: c.Name, NetBIOSDomain: c.Domain},
	}}, nil
}

func (c *Computer) account(user string) (Account, bool) {
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		user = user[i+1:]
	}
	for name, a := range c.Accounts {
		if strings.EqualFold(name, user) {
			return a, true
		}
	}
	return Account{}, false
}

// computerOf returns t's computer, or an error.
func (n *Network) computerOf(t *deploy.Target) (*Computer, error) {
	if t.Grant == nil {
		return nil, deploy.ErrNoGrant
	}
	c := n.Computer(t.Grant.Addr)
	if c == nil {
		return nil, fmt.Errorf("sessiontest: no computer at %s", t.Grant.Addr)
	}
	return c, nil
}

// Deploy implements deploy.Deployer: it "copies" the applet as
// C:\Windows\<deploy.FolderName of the session>\applet-<session>.exe,
// journaling the file first, and reports its progress in one step.
func (n *Network) Deploy(ctx context.Context, t *deploy.Target, progress func(done, total int64)) (string, error) {
	p := `C:\Windows\` + deploy.FolderName(t.Session) + `\applet-` + t.Session + ".exe"
	if err := n.put(ctx, t, p, []byte("MZ sessiontest applet")); err != nil {
		return "", err
	}
	if progress != nil {
		progress(21, 21)
	}
	return p, nil
}

// DeployFile implements deploy.FileDeployer: it keeps content as name next
// to t.AppletPath, journaled like the applet.
func (n *Network) DeployFile(ctx context.Context, t *deploy.Target, name string, content []byte) (string, error) {
	if name == "" || strings.ContainsAny(name, `\/`) {
		return "", fmt.Errorf("%w: %q is not a plain file name", deploy.ErrBadOptions, name)
	}
	p := t.AppletPath[:strings.LastIndexByte(t.AppletPath, '\\')+1] + name
	return p, n.put(ctx, t, p, content)
}

func (n *Network) put(ctx context.Context, t *deploy.Target, path string, content []byte) error {
	c, err := n.computerOf(t)
	if err != nil {
		return err
	}
	if t.Journal != nil {
		data, _ := json.Marshal(path)
		if _, err := t.Journal.Record(ctx, deploy.Artifact{Kind: KindFile, Addr: t.Grant.Addr, Name: path, Data: data, Note: "sessiontest file"}); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		c.files = make(map[string][]byte)
	}
	c.files[path] = slices.Clone(content)
	return nil
}

// Undoers implements deploy.Undoer: the undo function of KindFile removes
// the file from the grant's computer. Artifacts of another computer are
// deploy.ErrNotMine.
func (n *Network) Undoers(g *adauth.Grant) deploy.Undoers {
	return deploy.Undoers{KindFile: func(ctx context.Context, a deploy.Artifact) error {
		if g == nil {
			return deploy.ErrNoGrant
		}
		if !strings.EqualFold(a.Addr, g.Addr) {
			return deploy.ErrNotMine
		}
		c := n.Computer(g.Addr)
		if c == nil {
			return fmt.Errorf("sessiontest: no computer at %s", g.Addr)
		}
		c.mu.Lock()
		delete(c.files, a.Name)
		c.mu.Unlock()
		return nil
	}}
}

// Name implements deploy.Launcher: it returns LauncherName.
func (n *Network) Name() string { return LauncherName }

// Launch implements deploy.Launcher. The computer's LaunchErr, when set,
// is returned as it is. Otherwise the "applet" starts: a goroutine that
// reads and removes its ticket file (the -ticket-file argument, next to
// spec.Path), checks in with the console over loopback, and serves until
// the console stops it, its Handle's Stop is called, or the Network is
// closed. Launch does not wait for the check-in.
func (n *Network) Launch(ctx context.Context, t *deploy.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	if err := spec.Validate(); err != nil {
		return nil, &deploy.LaunchError{Launcher: LauncherName, Step: "validate", Kind: deploy.ErrBadSpec, Err: err}
	}
	c, err := n.computerOf(t)
	if err != nil {
		return nil, &deploy.LaunchError{Launcher: LauncherName, Step: "launch", Err: err}
	}
	if c.LaunchErr != nil {
		return nil, c.LaunchErr
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, &deploy.LaunchError{Launcher: LauncherName, Step: "launch", Kind: deploy.ErrUnreachable, Err: errors.New("sessiontest: network closed")}
	}
	n.wg.Add(1)
	n.mu.Unlock()

	var ticket []byte
	if name := ticketArg(spec.Args); name != "" {
		p := spec.Path[:strings.LastIndexByte(spec.Path, '\\')+1] + name
		c.mu.Lock()
		ticket = c.files[p]
		delete(c.files, p) // the applet removes its ticket once read
		c.mu.Unlock()
	}
	actx, cancel := context.WithCancel(context.Background())
	a := &applet{stop: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.nextPID += 4
	a.pid = 1000 + c.nextPID
	if c.applets == nil {
		c.applets = make(map[uint32]*applet)
	}
	c.applets[a.pid] = a
	c.mu.Unlock()
	go func() {
		defer n.wg.Done()
		defer close(a.done)
		defer func() {
			c.mu.Lock()
			delete(c.applets, a.pid)
			c.mu.Unlock()
		}()
		a.run(actx, c, ticket)
	}()
	return &handle{a: a}, nil
}

func ticketArg(args []string) string {
	for i, a := range args {
		if a == "-"+checkin.FlagTicketFile && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// applet is a fake applet: a goroutine.
type applet struct {
	pid  uint32
	stop context.CancelFunc
	done chan struct{}
}

func (a *applet) run(ctx context.Context, c *Computer, ticketFile []byte) {
	if c.NoCheckin || ticketFile == nil {
		<-ctx.Done()
		return
	}
	t, err := checkin.ParseTicketFile(ticketFile)
	if err != nil {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ac, err := checkin.Dial(dctx, t, checkin.Hello{Name: c.Name, PID: int(a.pid), Applet: "sessiontest applet"})
	cancel()
	if err != nil {
		return
	}
	defer ac.Close()
	_ = ac.Run(ctx, time.Second)
}

// handle is a fake applet's deploy.Handle.
type handle struct{ a *applet }

func (h *handle) PID() uint32 { return h.a.pid }

func (h *handle) Running(context.Context) (bool, error) {
	select {
	case <-h.a.done:
		return false, nil
	default:
		return true, nil
	}
}

func (h *handle) Stop(ctx context.Context) error {
	h.a.stop()
	select {
	case <-h.a.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	_ adauth.Authenticator = (*Network)(nil)
	_ discovery.Discoverer = (*Network)(nil)
	_ deploy.FileDeployer  = (*Network)(nil)
	_ deploy.Launcher      = (*Network)(nil)
	_ deploy.Undoer        = (*Network)(nil)
)
