package winemu

import (
	"context"
	"errors"
	"fmt"
	"github.com/oiweiwei/gokrb5.fork/v9/keytab"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/midl/uuid"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Close or
// after their context ends.
var ErrServerClosed = errors.New("winemu: server closed")

// ErrDuplicateInterface is returned by Register for an interface UUID and
// major version that is already registered.
var ErrDuplicateInterface = errors.New("winemu: interface already registered")

// Interface is one DCE/RPC interface that the server dispatches to.
//
// Handle decodes a request's stub data and runs the operation; go-msrpc's
// generated XxxServerHandle functions (for example
// svcctl.NewSvcctlServerHandle) have exactly this shape. Object, when set,
// is consulted first for requests that carry an object UUID (DCOM puts the
// IPID there) and may return a handler for that object; returning false
// faults the call with nca_unk_if. Rundown is called once when a
// connection that bound the interface closes, with that connection's ID
// (see Call.ConnID), so that context handles or object references held by
// the connection can be released.
//
// OnEndpointMapperPort makes ListenAndServe also serve the interface on
// the endpoint mapper's port (as Windows does for the DCOM activation
// interfaces); every interface is served on the dynamic port.
type Interface struct {
	Name                 string
	Syntax               dcerpc.SyntaxID
	Handle               dcerpc.ServerHandle
	Object               func(ctx context.Context, object *uuid.UUID) (dcerpc.ServerHandle, bool)
	Rundown              func(connID uint64)
	OnEndpointMapperPort bool
}

// Endpoint is a TCP endpoint on which the server serves an interface; the
// endpoint mapper answers with these.
type Endpoint struct {
	Syntax dcerpc.SyntaxID
	Name   string
	Addr   netip.AddrPort
}

// Server is a DCE/RPC connection-oriented server over TCP with NTLM, the
// endpoint mapper and the Service Control Manager.
//
// Set the exported fields before the first Serve, Start or
// ListenAndServe; do not change them afterwards (Faults is the exception:
// it is safe to change at any time). A Server must not be copied after
// first use. It serves NTLM, SPNEGO-wrapped NTLM and, with Keytab, Kerberos; NDR
// 2.0 only, and handles the calls of one connection in order.
type Server struct {
	// Users maps account names (case-insensitive) to their secret and
	// rights. A Kerberos client is the user of its ticket's principal
	// name (without realm).
	Users map[string]User
	// Keytab, when set, lets clients authenticate with Kerberos (auth
	// type 16, DCE style) with tickets for the computer's services
	// (host/, RPCSS/); KeytabPrincipal, when set, names the keytab entry
	// to decrypt them with (for example the machine account, NAME$).
	Keytab          *keytab.Keytab
	KeytabPrincipal string
	// NoNTLM refuses NTLM and SPNEGO binds: Kerberos only.
	NoNTLM bool
	// Root is the directory that C:\Windows maps to (the target's ADMIN$).
	Root string
	// NetBIOSName, Workgroup, DNSName and DNSDomain are announced in the
	// NTLM CHALLENGE. Defaults: WINEMU, WORKGROUP, lower-case NetBIOSName.
	NetBIOSName, Workgroup, DNSName, DNSDomain string
	// Logger receives one line per RPC call and connection-level events.
	// nil discards.
	Logger *slog.Logger
	// Faults injects failures; see Faults.
	Faults Faults
	// EPMPort is the endpoint mapper's port for ListenAndServe (0 means 135).
	EPMPort int
	// DynamicPort is the port ListenAndServe serves the other interfaces on
	// (0 picks a free one).
	DynamicPort int
	// ServiceStartTimeout is how long StartService waits for a service
	// process it started to report that it runs (see ServiceStatusFDEnv)
	// before it kills the process group and fails with
	// ERROR_SERVICE_REQUEST_TIMEOUT (1053), as Windows' SCM does after its
	// ServicesPipeTimeout. Zero means 30 s, Windows' default. A negative
	// value turns the wait off: a service counts as running as soon as
	// its process has started, which lets tests run plain programs (such
	// as /bin/sleep) as services; Windows has no such mode.
	ServiceStartTimeout time.Duration
	// KeepProcesses leaves the processes that services started running
	// when the server closes.
	KeepProcesses bool
	// KeepServices lists service-name patterns (path.Match syntax,
	// case-insensitive, for example "LCKeep*") whose processes outlive the
	// server even without KeepProcesses; the reaper of such a process
	// stays until it exits.
	KeepServices []string
	// ProcessOutput receives the standard output and error of started
	// processes (nil discards).
	ProcessOutput io.Writer
	// BeforeStart, when set, is called with the command line of every
	// process about to be started, as it arrived: the service's binary
	// path (kind "scm", in StartService) or Win32_Process.Create's
	// CommandLine (kind "wmi"). It runs before the process exists, on
	// the RPC call's goroutine, and delays the start until it returns. It
	// is how tests play a local user of the target who reads ImagePaths
	// and process command lines.
	BeforeStart func(kind, commandLine string)

	initOnce sync.Once
	scm      *SCM
	epm      *endpointMapper

	mu        sync.Mutex
	ifaces    map[string]*Interface // key: ifaceKey
	endpoints []Endpoint
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup

	nextConn  atomic.Uint64
	nextGroup atomic.Uint32
}

func ifaceKey(s *dcerpc.SyntaxID) string {
	return s.IfUUID.String() + "/" + strconv.Itoa(int(s.IfVersionMajor))
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		s.ifaces = make(map[string]*Interface)
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.done = make(chan struct{})
		s.scm = newSCM(s)
		s.epm = &endpointMapper{srv: s}
		s.ifaces[ifaceKey(epm.EpmSyntaxV3_0)] = &Interface{
			Name:   "epm",
			Syntax: *epm.EpmSyntaxV3_0,
			Handle: epm.NewEpmServerHandle(s.epm),
		}
		s.ifaces[ifaceKey(svcctl.SvcctlSyntaxV2_0)] = &Interface{
			Name:    "svcctl",
			Syntax:  *svcctl.SvcctlSyntaxV2_0,
			Handle:  svcctl.NewSvcctlServerHandle(s.scm),
			Rundown: s.scm.rundown,
		}
	})
}

// SCM returns the server's Service Control Manager. Its methods can be
// called in-process (see WithCaller) and see the same service table as
// RPC clients.
func (s *Server) SCM() *SCM {
	s.init()
	return s.scm
}

// Register adds an interface to the server. It must be called before the
// interface is served; it returns ErrDuplicateInterface if the UUID and
// major version are taken (the endpoint mapper and svcctl are built in).
func (s *Server) Register(iface Interface) error {
	s.init()
	if iface.Syntax.IfUUID == nil || iface.Handle == nil {
		return fmt.Errorf("winemu: register %q: syntax and handler are required", iface.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ifaceKey(&iface.Syntax)
	if _, ok := s.ifaces[k]; ok {
		return fmt.Errorf("%w: %s %s", ErrDuplicateInterface, iface.Name, k)
	}
	cp := iface
	s.ifaces[k] = &cp
	return nil
}

// lookupIface finds the registered interface for an abstract syntax
// (same UUID and major version, client minor not above the server's).
func (s *Server) lookupIface(syn *dcerpc.SyntaxID) *Interface {
	if syn == nil || syn.IfUUID == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.ifaces[ifaceKey(syn)]
	if i == nil || syn.IfVersionMinor > i.Syntax.IfVersionMinor {
		return nil
	}
	return i
}

// Endpoints returns the endpoints registered so far.
func (s *Server) Endpoints() []Endpoint {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Endpoint(nil), s.endpoints...)
}

// EndpointFor returns the first registered TCP endpoint for an interface.
func (s *Server) EndpointFor(syn *dcerpc.SyntaxID) (Endpoint, bool) {
	for _, e := range s.Endpoints() {
		if e.Syntax.IfUUID.Equals(syn.IfUUID) && e.Syntax.IfVersionMajor == syn.IfVersionMajor {
			return e, true
		}
	}
	return Endpoint{}, false
}

// Serve accepts connections on l and serves the listed interfaces on them
// (all registered interfaces when none are listed; the endpoint mapper is
// always served). It registers l's address with the endpoint mapper for
// each served interface other than the endpoint mapper itself, so call
// Register before Serve. Serve returns ErrServerClosed after Close or
// when ctx ends; it closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener, only ...*dcerpc.SyntaxID) error {
	s.init()
	served, err := s.track(l, only, false)
	if err != nil {
		l.Close()
		return err
	}
	return s.serve(ctx, l, served)
}

// track registers a listener (and, for background serving, counts its
// goroutine in s.wg while holding the lock that Close takes).
func (s *Server) track(l net.Listener, only []*dcerpc.SyntaxID, background bool) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	served := map[string]bool{ifaceKey(epm.EpmSyntaxV3_0): true}
	if len(only) == 0 {
		for k := range s.ifaces {
			served[k] = true
		}
	}
	for _, syn := range only {
		k := ifaceKey(syn)
		if _, ok := s.ifaces[k]; !ok {
			return nil, fmt.Errorf("winemu: serve: interface %s is not registered", k)
		}
		served[k] = true
	}
	ap, _ := netip.ParseAddrPort(l.Addr().String())
	for k := range served {
		i := s.ifaces[k]
		if k == ifaceKey(epm.EpmSyntaxV3_0) || !ap.IsValid() {
			continue
		}
		s.endpoints = append(s.endpoints, Endpoint{Syntax: i.Syntax, Name: i.Name, Addr: ap})
	}
	s.listeners[l] = struct{}{}
	if background {
		s.wg.Add(1)
	}
	return served, nil
}

func (s *Server) serve(ctx context.Context, l net.Listener, served map[string]bool) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			if ctx.Err() != nil {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("winemu: accept: %w", err)
		}
		if s.Faults.Refuse() {
			resetConn(nc)
			s.Logger.Info("connection refused by fault mode", "remote", nc.RemoteAddr().String())
			continue
		}
		c := s.newConn(ctx, nc, served)
		if c == nil {
			resetConn(nc)
			continue
		}
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
}

func (s *Server) newConn(ctx context.Context, nc net.Conn, served map[string]bool) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	c := &conn{
		srv:      s,
		nc:       nc,
		id:       s.nextConn.Add(1),
		served:   served,
		contexts: make(map[uint16]*Interface),
		auths:    make(map[uint32]*authContext),
		bound:    make(map[*Interface]bool),
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// resetConn closes a TCP connection with a reset instead of a FIN.
func resetConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	nc.Close()
}

// Start listens on host:EPMPort (the endpoint mapper plus interfaces with
// OnEndpointMapperPort) and on host:DynamicPort (every interface), registers
// the dynamic endpoint with the endpoint mapper, and serves both in the
// background until ctx ends or Close is called. It returns once both
// listeners are open. host is an IP address (or host name); an IPv6
// literal may be bracketed.
func (s *Server) Start(ctx context.Context, host string) error {
	s.init()
	epmPort := s.EPMPort
	if epmPort == 0 {
		epmPort = 135
	}
	lc := net.ListenConfig{}
	le, err := lc.Listen(ctx, "tcp", net.JoinHostPort(trimBrackets(host), strconv.Itoa(epmPort)))
	if err != nil {
		return fmt.Errorf("winemu: listen for the endpoint mapper: %w", err)
	}
	ld, err := lc.Listen(ctx, "tcp", net.JoinHostPort(trimBrackets(host), strconv.Itoa(s.DynamicPort)))
	if err != nil {
		le.Close()
		return fmt.Errorf("winemu: listen on the dynamic port: %w", err)
	}
	var onEPM []*dcerpc.SyntaxID
	s.mu.Lock()
	for _, i := range s.ifaces {
		if i.OnEndpointMapperPort {
			onEPM = append(onEPM, &i.Syntax)
		}
	}
	s.mu.Unlock()
	if len(onEPM) == 0 {
		onEPM = []*dcerpc.SyntaxID{epm.EpmSyntaxV3_0}
	}
	servedE, err := s.track(le, onEPM, true)
	if err != nil {
		le.Close()
		ld.Close()
		return err
	}
	servedD, err := s.track(ld, nil, true)
	if err != nil {
		s.wg.Done() // the first listener's goroutine never starts
		le.Close()
		ld.Close()
		return err
	}
	s.Logger.Info("winemu listening", "epm", le.Addr().String(), "dynamic", ld.Addr().String())
	for _, x := range []struct {
		l      net.Listener
		served map[string]bool
	}{{le, servedE}, {ld, servedD}} {
		go func() {
			defer s.wg.Done()
			if err := s.serve(ctx, x.l, x.served); err != nil && !errors.Is(err, ErrServerClosed) {
				s.Logger.Error("serve", "addr", x.l.Addr().String(), "err", err)
			}
		}()
	}
	return nil
}

// ListenExtra opens a listener on host with a free port, registers it
// with the endpoint mapper for the listed interfaces (all when none are
// listed) and serves it in the background until ctx ends or Close is
// called. It returns the listener's address once it accepts connections;
// this is how an interface gets an extra dynamic port (for example the
// port a DCOM object exporter hands out in its string bindings).
func (s *Server) ListenExtra(ctx context.Context, host string, only ...*dcerpc.SyntaxID) (netip.AddrPort, error) {
	s.init()
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(trimBrackets(host), "0"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("winemu: listen: %w", err)
	}
	ap, err := netipAddrPort(l.Addr())
	if err != nil {
		l.Close()
		return netip.AddrPort{}, err
	}
	served, err := s.track(l, only, true)
	if err != nil {
		l.Close()
		return netip.AddrPort{}, err
	}
	go func() {
		defer s.wg.Done()
		if err := s.serve(ctx, l, served); err != nil && !errors.Is(err, ErrServerClosed) {
			s.Logger.Error("serve", "addr", l.Addr().String(), "err", err)
		}
	}()
	return ap, nil
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// ListenAndServe is Start followed by waiting until ctx ends or Close is
// called; it then closes the server and returns ErrServerClosed.
func (s *Server) ListenAndServe(ctx context.Context, host string) error {
	if err := s.Start(ctx, host); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	s.Close()
	return ErrServerClosed
}

// Close stops every listener and connection, stops the processes that
// services started (unless KeepProcesses is set), and waits for the
// server's goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
		c.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.scm.close()
	return nil
}
