package wmi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmio"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/grantsess"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
)

// DefaultNamespace is the WMI namespace Win32_Process lives in.
const DefaultNamespace = "//./root/cimv2"

// target is what the launcher needs from a grant: where the computer is
// and who we are. WMI does not use the grant's SMB session. Launch
// (deploy.Launcher) builds it from the target's grant.
type target struct {
	// Addr is the computer's IP address (or name) for ncacn_ip_tcp. The
	// dynamic port is always dialed on Addr, whatever address the OXID
	// bindings name.
	Addr string
	// Credentials authenticate each RPC security context (NTLM). They
	// are never logged.
	Credentials rpcauth.Credentials
	// ExpectName, when set, is the computer name each NTLM security
	// context must see in the server's challenge before credentials are
	// sent (the grant's Identity); empty checks nothing.
	ExpectName string
	// Kerberos, when set (a grant that logged on with Kerberos),
	// authenticates each security context with Kerberos to RPCSS/FQDN
	// instead of NTLM.
	Kerberos grantsess.KerberosRPC
}

// targetFromGrant returns the target of an authenticated grant: its
// host, its proved credentials, the computer's identity from the
// grant's logon (target.ExpectName), and its Kerberos binds when it
// logged on with Kerberos.
func targetFromGrant(g *adauth.Grant) target {
	return target{Addr: g.Addr, Credentials: g.Credentials, ExpectName: g.Identity(), Kerberos: grantsess.Kerberos(g)}
}

// Timeouts bounds each step of a WMI session. A zero field takes its
// default.
type Timeouts struct {
	// Connect bounds the TCP connect and bind on port 135 (default 5 s).
	Connect time.Duration
	// Activate bounds ServerAlive2 and RemoteActivation, each (default
	// 10 s).
	Activate time.Duration
	// Dynamic bounds the TCP connect and bind on the dynamic port that
	// the OXID bindings name (default 5 s): this is the step that hangs
	// in the field when that port is filtered.
	Dynamic time.Duration
	// Login bounds NTLMLogin (default 10 s).
	Login time.Duration
	// Exec bounds GetObject and ExecMethod, each (default 30 s).
	Exec time.Duration
	// Query bounds one ExecQuery with its enumeration (default 15 s).
	Query time.Duration
	// Release bounds the release of the remote objects (default 5 s).
	Release time.Duration
}

func (t Timeouts) of(step string) time.Duration {
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	switch step {
	case StepConnect:
		return pick(t.Connect, 5*time.Second)
	case StepServerAlive, StepActivate:
		return pick(t.Activate, 10*time.Second)
	case StepConnectDynamic:
		return pick(t.Dynamic, 5*time.Second)
	case StepLogin:
		return pick(t.Login, 10*time.Second)
	case StepGetClass, StepCreate, StepTerminate:
		return pick(t.Exec, 30*time.Second)
	case StepRelease:
		return pick(t.Release, 5*time.Second)
	default:
		return pick(t.Query, 15*time.Second)
	}
}

// Launcher starts the applet with WMI's Win32_Process.Create over DCOM,
// as `wmic /node:X process call create` does: IObjectExporter.ServerAlive2
// and IActivation.RemoteActivation of the WbemLevel1Login class on TCP
// 135, then IWbemLevel1Login.NTLMLogin, IWbemServices.GetObject and
// ExecMethod on the dynamic port the OXID bindings name. Each connection
// has its own NTLM security context with the target's credentials,
// sealed (PKT_PRIVACY) by default with the signature of every sealed
// response verified (a tampered one fails with adauth.ErrIntegrity).
//
// The zero value is ready to use. Set the fields before the first
// Launch; a Launcher is safe for concurrent use afterwards. It does not
// copy the applet (see deploy.Copy), creates no service and writes no
// registry value, so it has nothing to journal; Handle.Stop terminates
// the process.
type Launcher struct {
	// Level is the RPC protection; the zero value is adauth.RPCPrivacy.
	// adauth.RPCNone is refused: DCOM hardening (KB5004442) requires at
	// least packet integrity.
	Level adauth.RPCLevel
	// Timeouts bounds each step.
	Timeouts Timeouts
	// EPMPort is the port of the endpoint mapper and DCOM activation;
	// 0 means 135.
	EPMPort int
	// Namespace is the WMI namespace; empty means DefaultNamespace.
	Namespace string
	// NoConfirm skips the query that confirms the new process exists.
	NoConfirm bool
	// Logger receives progress; nil discards. Credentials are never
	// logged.
	Logger *slog.Logger
}

// Name returns "wmi".
func (l *Launcher) Name() string { return "wmi" }

func (l *Launcher) log() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}

func (l *Launcher) timeouts() Timeouts { return l.Timeouts }

func (l *Launcher) epmPort() int {
	if l.EPMPort > 0 {
		return l.EPMPort
	}
	return 135
}

func (l *Launcher) namespace() string {
	if l.Namespace != "" {
		return l.Namespace
	}
	return DefaultNamespace
}

// errLevel is returned for adauth.RPCNone.
var errLevel = errors.New("wmi: DCOM requires packet integrity or privacy (KB5004442); adauth.RPCNone is not allowed")

// session opens a WMI session, checking the level first.
func (l *Launcher) session(ctx context.Context, t target) (*session, error) {
	if l.Level == adauth.RPCNone {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: StepConnect, Kind: deploy.ErrBadSpec, Err: errLevel}
	}
	return l.open(ctx, t)
}

// launchTarget validates spec and starts it with Win32_Process.Create, with the
// applet's directory as the current directory, then confirms that a
// process with the returned ProcessId exists (unless NoConfirm). It
// releases every remote object and closes every connection before it
// returns. A failure is a *deploy.LaunchError whose Step names the step
// and whose cause (an *EndpointError) names the port; spec.Params are not
// supported (WMI has no parameter store) and make launchTarget fail with
// ErrBadSpec.
func (l *Launcher) launchTarget(ctx context.Context, t target, spec deploy.LaunchSpec) (*Handle, error) {
	if err := spec.Validate(); err != nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: StepValidate, Kind: deploy.ErrBadSpec, Err: err}
	}
	if len(spec.Params) > 0 {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: StepValidate, Kind: deploy.ErrBadSpec,
			Err: errors.New("wmi: applet parameters are not supported by the WMI launcher; pass them as arguments")}
	}
	start := time.Now()
	s, err := l.session(ctx, t)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	cls, err := s.getObject(ctx, "Win32_Process")
	if err != nil {
		return nil, err
	}
	dir := spec.Path
	if i := strings.LastIndexAny(dir, `\/`); i > 0 {
		dir = dir[:i]
		if strings.HasSuffix(dir, ":") {
			dir += `\`
		}
	} else {
		dir = ""
	}
	in := wmio.Values{"CommandLine": spec.CommandLine()}
	if dir != "" {
		in["CurrentDirectory"] = dir
	}
	out, err := s.execMethod(ctx, StepCreate, cls, "Win32_Process", "Create", in)
	if err != nil {
		return nil, err
	}
	rv, _ := toUint32(out["ReturnValue"])
	if rv != 0 {
		return nil, l.failure(StepCreate, fmt.Errorf("wmi: Win32_Process.Create of %s: %w", spec.Path, ReturnValue(rv)))
	}
	pid, ok := toUint32(out["ProcessId"])
	if !ok || pid == 0 {
		return nil, l.failure(StepCreate, errors.New("wmi: Win32_Process.Create returned no ProcessId"))
	}
	h := &Handle{l: l, t: t, pid: pid, exe: spec.Path}
	if !l.NoConfirm {
		p, found, err := s.process(ctx, StepConfirm, pid)
		h.created = p.created
		if err != nil {
			// The process may run with nobody to watch it: stop it,
			// best effort, on a session of its own.
			s.close(ctx)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeouts().of(StepTerminate))
			terr := h.Stop(cctx)
			cancel()
			if terr != nil {
				l.log().Warn("terminate after a failed confirmation", "host", t.Addr, "pid", pid, "err", terr)
				return nil, fmt.Errorf("%w (process %d may still run: %w: %w)", err, pid, deploy.ErrAttemptLeftBehind, terr)
			}
			return nil, err
		}
		if !found {
			return nil, l.failure(StepConfirm, fmt.Errorf("%w: ProcessId %d", ErrProcessNotFound, pid))
		}
	}
	l.log().Info("applet started through WMI", "host", t.Addr, "pid", pid, "dynamic_port", s.port, "dur", time.Since(start).Round(time.Millisecond).String())
	return h, nil
}

// Launch implements deploy.Launcher: it starts spec on t.Grant's computer
// (its address and proved credentials; WMI does not use the grant's SMB
// session). It records nothing in t.Journal: WMI creates no service, file
// or registry value, and Handle.Stop terminates the process.
func (l *Launcher) Launch(ctx context.Context, t *deploy.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	if t == nil || t.Grant == nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: StepValidate, Kind: deploy.ErrBadSpec, Err: errors.New("wmi: no grant")}
	}
	h, err := l.launchTarget(ctx, targetFromGrant(t.Grant), spec)
	if err != nil {
		return nil, err
	}
	return h, nil
}

var _ deploy.Launcher = (*Launcher)(nil)

// processInfo is what identifies one process beyond its reusable ID.
type processInfo struct {
	exe     string // ExecutablePath
	created string // CreationDate (CIM DATETIME), "" when not reported
}

// process asks for the Win32_Process with that ProcessId and returns its
// ExecutablePath and CreationDate, and whether it exists.
func (s *session) process(ctx context.Context, step string, pid uint32) (processInfo, bool, error) {
	rows, err := s.query(ctx, step, "SELECT Handle, ProcessId, ExecutablePath, CreationDate FROM Win32_Process WHERE ProcessId = "+strconv.FormatUint(uint64(pid), 10))
	if err != nil {
		return processInfo{}, false, err
	}
	for _, r := range rows {
		if v, ok := toUint32(r["ProcessId"]); ok && v == pid {
			exe, _ := r["ExecutablePath"].(string)
			created, _ := r["CreationDate"].(string)
			return processInfo{exe: exe, created: created}, true, nil
		}
	}
	return processInfo{}, false, nil
}

func toUint32(v any) (uint32, bool) {
	switch x := v.(type) {
	case uint32:
		return x, true
	case int32:
		return uint32(x), true
	case uint64:
		return uint32(x), true
	case int64:
		return uint32(x), true
	case uint16:
		return uint32(x), true
	}
	return 0, false
}

// preflightQuery is the query Preflight runs.
const preflightQuery = "SELECT Caption, Version, BuildNumber, OSArchitecture FROM Win32_OperatingSystem"

// Preflight implements deploy.Preflighter: it reads the operating system
// of t.Grant's computer through WMI (Win32_OperatingSystem): Product is
// its Caption, Version its Version (for example "10.0.26100"), Build its
// BuildNumber and Arch its OSArchitecture (for example "64-bit"). The
// registry-only fields stay unknown (nil), and Unknown lists the WMI
// properties that were missing. It changes nothing on the target and
// records nothing in t.Journal.
func (l *Launcher) Preflight(ctx context.Context, t *deploy.Target) (*deploy.Preflight, error) {
	if t == nil || t.Grant == nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: StepValidate, Kind: deploy.ErrBadSpec, Err: errors.New("wmi: no grant")}
	}
	return l.preflight(ctx, targetFromGrant(t.Grant))
}

var _ deploy.Preflighter = (*Launcher)(nil)

// preflight runs the query of Preflight on t.
func (l *Launcher) preflight(ctx context.Context, t target) (*deploy.Preflight, error) {
	s, err := l.session(ctx, t)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	rows, err := s.query(ctx, StepQuery, preflightQuery)
	if err != nil {
		return nil, err
	}
	p := &deploy.Preflight{}
	if len(rows) == 0 {
		p.Unknown = []string{`Win32_OperatingSystem\Caption`, `Win32_OperatingSystem\Version`, `Win32_OperatingSystem\BuildNumber`, `Win32_OperatingSystem\OSArchitecture`}
		return p, nil
	}
	r := rows[0]
	for _, f := range []struct {
		name string
		dst  *string
	}{{"Caption", &p.Product}, {"Version", &p.Version}, {"BuildNumber", &p.Build}, {"OSArchitecture", &p.Arch}} {
		if v, ok := r[f.name].(string); ok && v != "" {
			*f.dst = strings.TrimSpace(v)
		} else {
			p.Unknown = append(p.Unknown, `Win32_OperatingSystem\`+f.name)
		}
	}
	return p, nil
}

// Handle is an applet started through WMI. It implements deploy.Handle
// and deploy.ExitNotifier. It holds no connection: Running and Stop open a
// WMI session of their own.
//
// Windows reuses process IDs, so the Handle remembers what identifies its
// process beyond the ID: the executable's path and, when the launch was
// confirmed, the process's CreationDate. A process under the same ID that
// differs in either is another process: Running reports false and Stop
// leaves it alone.
type Handle struct {
	l       *Launcher
	t       target
	pid     uint32
	exe     string // the spec's path, which ExecutablePath must match
	created string // CreationDate at launch; "" when not confirmed

	mu      sync.Mutex
	stopped bool
	exited  bool // the applet said goodbye: never terminate
	stopErr error
}

// AppletExited implements deploy.ExitNotifier: the applet has said
// goodbye and exits by itself, so Stop terminates nothing. It sends
// nothing to the target.
func (h *Handle) AppletExited() {
	h.mu.Lock()
	h.exited = true
	h.mu.Unlock()
}

// ours reports whether p, found under the handle's process ID, is the
// process the handle launched.
func (h *Handle) ours(p processInfo) bool {
	if p.exe != "" && !strings.EqualFold(p.exe, h.exe) {
		return false
	}
	return h.created == "" || p.created == h.created
}

var _ deploy.Handle = (*Handle)(nil)

// PID returns the ProcessId that Win32_Process.Create returned.
func (h *Handle) PID() uint32 { return h.pid }

// Running reports whether the applet's process still runs on the target
// (a WMI query): a Win32_Process with its ProcessId whose ExecutablePath
// and CreationDate are those of the launch. Another process that reuses
// the ID does not count.
func (h *Handle) Running(ctx context.Context) (bool, error) {
	h.mu.Lock()
	stopped := h.stopped || h.exited
	h.mu.Unlock()
	if stopped {
		return false, nil
	}
	s, err := h.l.session(ctx, h.t)
	if err != nil {
		return false, err
	}
	defer s.close(ctx)
	p, found, err := s.process(ctx, StepQuery, h.pid)
	return found && h.ours(p), err
}

// Stop terminates the applet's process with Win32_Process.Terminate, but
// only while the process under its ID is still the one launched (same
// ExecutablePath and CreationDate, queried first): a process that is gone,
// or another process that reuses the ID, is left alone and is not an
// error. After AppletExited it terminates nothing at all. It is safe to
// call more than once; later calls return the first result.
func (h *Handle) Stop(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return h.stopErr
	}
	h.stopped = true
	if h.exited {
		h.l.log().Debug("applet said goodbye; not terminating", "host", h.t.Addr, "pid", h.pid)
		return nil
	}
	h.stopErr = h.terminate(ctx)
	return h.stopErr
}

func (h *Handle) terminate(ctx context.Context) error {
	s, err := h.l.session(ctx, h.t)
	if err != nil {
		return err
	}
	defer s.close(ctx)
	p, found, err := s.process(ctx, StepTerminate, h.pid)
	if err != nil {
		return err
	}
	if !found {
		return nil
	}
	if !h.ours(p) {
		h.l.log().Info("process ID now belongs to another process; not terminating", "host", h.t.Addr, "pid", h.pid, "exe", p.exe, "created", p.created)
		return nil
	}
	cls, err := s.getObject(ctx, "Win32_Process")
	if err != nil {
		return err
	}
	path := `Win32_Process.Handle="` + strconv.FormatUint(uint64(h.pid), 10) + `"`
	out, err := s.execMethod(ctx, StepTerminate, cls, path, "Terminate", wmio.Values{"Reason": uint32(0)})
	var hr HResult
	if errors.As(err, &hr) && hr == WBEMENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	rv, _ := toUint32(out["ReturnValue"])
	switch ReturnValue(rv) {
	case 0, ReturnPathNotFound:
		return nil
	}
	return h.l.failure(StepTerminate, fmt.Errorf("wmi: Win32_Process.Terminate of %d: %w", h.pid, ReturnValue(rv)))
}
