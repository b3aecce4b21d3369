package remotereg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dcetypes"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
	"github.com/oiweiwei/go-msrpc/msrpc/rrp/winreg/v1"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/grantsess"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// Transport is how remotereg reaches the Service Control Manager.
type Transport int

const (
	// TransportPipe is \pipe\svcctl on the grant's SMB session. It is the
	// zero value.
	TransportPipe Transport = iota
	// TransportTCP is ncacn_ip_tcp on the port that the endpoint mapper
	// (TCP 135) names for svcctl, sealed with response integrity
	// verified (a tampered response fails with adauth.ErrIntegrity).
	TransportTCP
)

// String returns "pipe" or "tcp".
func (t Transport) String() string {
	switch t {
	case TransportPipe:
		return "pipe"
	case TransportTCP:
		return "tcp"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// MarshalText writes "pipe" or "tcp".
func (t Transport) MarshalText() ([]byte, error) {
	switch t {
	case TransportPipe, TransportTCP:
		return []byte(t.String()), nil
	}
	return nil, fmt.Errorf("remotereg: unknown transport %d", int(t))
}

// UnmarshalText reads "pipe" or "tcp".
func (t *Transport) UnmarshalText(b []byte) error {
	switch string(b) {
	case "pipe":
		*t = TransportPipe
	case "tcp":
		*t = TransportTCP
	default:
		return fmt.Errorf("remotereg: unknown transport %q", b)
	}
	return nil
}

// target is what the launcher needs from a grant: where the computer is,
// who we are, and the SMB session to open pipes on. Launch builds it from
// the grant; the package's tests build it directly.
type target struct {
	// Addr is the computer's IP address (or name) for ncacn_ip_tcp.
	Addr string
	// Credentials authenticate each RPC connection (NTLM). They are never
	// logged.
	Credentials rpcauth.Credentials
	// OpenPipe opens a named pipe on the grant's SMB session; nil means
	// there is no session and the pipe transport is unavailable.
	OpenPipe rpcauth.PipeOpener
	// ExpectName, when set, is the computer name each NTLM connection
	// over TCP must see in the server's challenge before credentials are
	// sent (the grant's Identity); empty checks nothing.
	ExpectName string
	// Kerberos, when set (a grant that logged on with Kerberos),
	// authenticates each RPC connection with Kerberos to host/FQDN
	// instead of NTLM with Credentials.
	Kerberos grantsess.KerberosRPC
}

// rpcConn is one bound client with the connection under it.
type rpcConn struct {
	cc        dcerpc.Conn
	endpoint  string
	transport Transport
	raw       *rawConns
}

// close closes the byte streams first, so that go-msrpc's receive loop,
// which its Close waits for, returns at once even on a stalled or
// abandoned connection; then it closes go-msrpc's connection.
func (c *rpcConn) close(ctx context.Context) {
	if c == nil {
		return
	}
	c.raw.closeAll()
	if c.cc != nil {
		cctx, cancel := closeContext(ctx)
		defer cancel()
		_ = c.cc.Close(cctx)
	}
}

// bindContext returns the context to bind on, and a function to call once
// the bind has returned. go-msrpc runs a connection's send and receive
// loops on the context of its first bind, so binding on ctx would tie the
// connection's life to the caller's context: a Handle kept after Launch
// would lose its SCM connection at the caller's usual "defer cancel()".
// The bind therefore runs on a context that is not cancelled with ctx,
// and until it returns, ctx ending closes the byte streams, which ends the
// bind at once. Every later call is bounded by its own context.
func (c *rpcConn) bindContext(ctx context.Context) (context.Context, func()) {
	stop := context.AfterFunc(ctx, c.raw.closeAll)
	return context.WithoutCancel(ctx), func() { stop() }
}

// rawConns remembers the byte streams dialed for one go-msrpc connection.
type rawConns struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (r *rawConns) add(c net.Conn) {
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
}

func (r *rawConns) closeAll() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}

// opener wraps a PipeOpener to remember what it opened.
func (r *rawConns) opener(open rpcauth.PipeOpener) rpcauth.PipeOpener {
	return func(ctx context.Context, pipe string) (net.Conn, error) {
		c, err := open(ctx, pipe)
		if err == nil {
			r.add(c)
		}
		return c, err
	}
}

// tcpDialer dials with rpcauth.TCPDialer and remembers the connections.
type tcpDialer struct {
	d rpcauth.TCPDialer
	r *rawConns
}

func (d *tcpDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, addr)
	if err == nil {
		d.r.add(c)
	}
	return c, err
}

// pipeRetryable reports whether opening a pipe is worth retrying: the
// server says the pipe exists but is busy.
func pipeRetryable(err error) bool { return errors.Is(err, smbconn.StatusPipeNotAvailable) }

// pipeEndpoint names a pipe on the target for diagnoses.
func pipeEndpoint(t target, pipe string) string {
	return `\\` + t.Addr + `\pipe\` + pipe
}

// dialPipe dials pipe on the grant's session and returns the connection;
// bind binds the interface's client on it.
func (l *Launcher) dialPipe(ctx context.Context, t target, pipe string) (*rpcConn, error) {
	ep := pipeEndpoint(t, pipe)
	if t.OpenPipe == nil {
		return nil, &endpointError{ep, errors.New("no SMB session to open the pipe on")}
	}
	raw := &rawConns{}
	cc, err := rpcauth.DialPipe(ctx, raw.opener(t.OpenPipe), pipe, l.backoff(), pipeRetryable, dcerpc.WithTimeout(l.rpcTimeout()))
	if err != nil {
		return nil, &endpointError{ep, err}
	}
	return &rpcConn{cc: cc, endpoint: ep, raw: raw}, nil
}

// endpointError carries the endpoint description with a dial or bind
// failure.
type endpointError struct {
	endpoint string
	err      error
}

// Error names the endpoint and the root of the cause (rpcauth.Cause);
// %+v prints the cause's full text instead.
func (e *endpointError) Error() string { return e.endpoint + ": " + rpcauth.Cause(e.err) }

// Format prints Error for %v and %s (quoted for %q), and the raw chain
// for %+v.
func (e *endpointError) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "%s: %+v", e.endpoint, e.err)
	case verb == 'q':
		fmt.Fprintf(f, "%q", e.Error())
	default:
		io.WriteString(f, e.Error())
	}
}
func (e *endpointError) Unwrap() error { return e.err }

// endpointOf returns the endpoint an error names, or fallback.
func endpointOf(err error, fallback string) string {
	var ee *endpointError
	if errors.As(err, &ee) {
		return ee.endpoint
	}
	return fallback
}

// securityOptions returns the per-connection security for a bind: NTLM
// with the grant's credentials, or Kerberos to host/FQDN for a Kerberos
// grant (internal/krb's options: a response that fails go-msrpc's Kerberos
// check, or arrives with a missing or malformed verifier, fails with
// adauth.ErrIntegrity).
func (l *Launcher) securityOptions(ctx context.Context, t target) ([]dcerpc.Option, error) {
	if t.Kerberos != nil && l.Level != adauth.RPCNone {
		return t.Kerberos(ctx, "host", l.Level == adauth.RPCPrivacy)
	}
	return rpcauth.OptionsFor(t.Credentials, l.Level, t.ExpectName)
}

// svcctlOverPipe binds svcctl on \pipe\svcctl.
func (l *Launcher) svcctlOverPipe(ctx context.Context, t target) (svcctl.SvcctlClient, *rpcConn, error) {
	c, err := l.dialPipe(ctx, t, "svcctl")
	if err != nil {
		return nil, nil, err
	}
	opts, err := l.securityOptions(ctx, t)
	if err != nil {
		c.close(ctx)
		return nil, nil, err
	}
	bctx, bound := c.bindContext(ctx)
	cli, err := svcctl.NewSvcctlClient(bctx, c.cc, opts...)
	bound()
	if err != nil {
		c.close(ctx)
		return nil, nil, &endpointError{c.endpoint, fmt.Errorf("bind svcctl: %w", err)}
	}
	return cli, c, nil
}

// winregOverPipe binds winreg on \pipe\winreg.
func (l *Launcher) winregOverPipe(ctx context.Context, t target) (winreg.WinregClient, *rpcConn, error) {
	c, err := l.dialPipe(ctx, t, "winreg")
	if err != nil {
		return nil, nil, err
	}
	opts, err := l.securityOptions(ctx, t)
	if err != nil {
		c.close(ctx)
		return nil, nil, err
	}
	bctx, bound := c.bindContext(ctx)
	cli, err := winreg.NewWinregClient(bctx, c.cc, opts...)
	bound()
	if err != nil {
		c.close(ctx)
		return nil, nil, &endpointError{c.endpoint, fmt.Errorf("bind winreg: %w", err)}
	}
	return cli, c, nil
}

// rpcTimeout is go-msrpc's per-read timeout on our connections. Its
// default (10 s) is shorter than the 30 s for which Windows' StartService
// waits on an applet that never reports SERVICE_RUNNING before it returns
// error 1053, so it is raised above the start wait; the caller's context
// still bounds every call.
func (l *Launcher) rpcTimeout() time.Duration {
	return l.startWait() + 30*time.Second
}

func (l *Launcher) epmPort() int {
	if l.EPMPort > 0 {
		return l.EPMPort
	}
	return 135
}

// svcctlOverTCP asks the endpoint mapper for svcctl's TCP port and binds
// svcctl there, sealed and verified.
func (l *Launcher) svcctlOverTCP(ctx context.Context, t target) (svcctl.SvcctlClient, *rpcConn, error) {
	opts, err := l.securityOptions(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	port, err := l.mapTCP(ctx, t.Addr, svcctl.SvcctlSyntaxV2_0)
	if err != nil {
		return nil, nil, err
	}
	ep := net.JoinHostPort(t.Addr, strconv.Itoa(port))
	raw := &rawConns{}
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+bindingHost(t.Addr)+"["+strconv.Itoa(port)+"]",
		dcerpc.WithDialer(&tcpDialer{r: raw}), dcerpc.WithNewTransport(), dcerpc.WithTimeout(l.rpcTimeout()))
	if err != nil {
		return nil, nil, &endpointError{ep, err}
	}
	c := &rpcConn{cc: cc, endpoint: "svcctl at " + ep, raw: raw}
	bctx, bound := c.bindContext(ctx)
	cli, err := svcctl.NewSvcctlClient(bctx, cc, opts...)
	bound()
	if err != nil {
		c.close(ctx)
		return nil, nil, &endpointError{c.endpoint, fmt.Errorf("bind svcctl: %w", err)}
	}
	return cli, c, nil
}

// bindingHost writes an address for a string binding (IPv6 literals are
// not bracketed there).
func bindingHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return h
}

// mapTCP asks the endpoint mapper on host (unauthenticated, as Windows
// clients do) which TCP port serves the interface syntax (ept_map).
func (l *Launcher) mapTCP(ctx context.Context, host string, syntax *dcerpc.SyntaxID) (int, error) {
	ep := net.JoinHostPort(host, strconv.Itoa(l.epmPort()))
	fail := func(err error) (int, error) {
		return 0, &endpointError{"the endpoint mapper at " + ep, err}
	}
	raw := &rawConns{}
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+bindingHost(host)+"["+strconv.Itoa(l.epmPort())+"]",
		dcerpc.WithDialer(&tcpDialer{r: raw}), dcerpc.WithNewTransport())
	if err != nil {
		return fail(err)
	}
	defer (&rpcConn{cc: cc, raw: raw}).close(ctx)
	cli, err := epm.NewEpmClient(ctx, cc, dcerpc.WithInsecure())
	if err != nil {
		return fail(fmt.Errorf("bind: %w", err))
	}
	resp, err := cli.Map(ctx, &epm.MapRequest{
		Object:      zeroUUID(),
		MapTower:    requestTower(syntax),
		EntryHandle: &epm.LookupHandle{UUID: zeroUUID()},
		MaxTowers:   4,
	})
	if err != nil {
		return fail(fmt.Errorf("ept_map: %w", err))
	}
	if resp.Status != 0 {
		return fail(fmt.Errorf("ept_map: %w: status 0x%08x", errNotRegistered, resp.Status))
	}
	for _, tw := range resp.Towers {
		if port, ok := tcpPort(tw); ok {
			return port, nil
		}
	}
	return fail(fmt.Errorf("ept_map: %w: no TCP tower", errNotRegistered))
}

// errNotRegistered: the endpoint mapper does not know the interface.
var errNotRegistered = errors.New("interface not registered with the endpoint mapper")

func zeroUUID() *dtyp.GUID { return &dtyp.GUID{Data4: make([]byte, 8)} }

// requestTower builds the ept_map request tower for syntax over
// ncacn_ip_tcp (see rpcauth.RequestTower).
func requestTower(syntax *dcerpc.SyntaxID) *dcetypes.Tower { return rpcauth.RequestTower(syntax) }

// tcpPort returns the TCP port floor of a tower.
func tcpPort(tw *dcetypes.Tower) (int, bool) { return rpcauth.TowerTCPPort(tw) }
