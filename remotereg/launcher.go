package remotereg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
)

// DefaultServicePrefix starts the name of every service remotereg creates
// when neither the LaunchSpec nor the Launcher names a prefix.
const DefaultServicePrefix = "lanconnect-"

// Launcher starts the applet as a demand-start Windows service through the
// target's Service Control Manager, over \pipe\svcctl on the grant's SMB
// session and, when the pipe transport cannot create services, over
// ncacn_ip_tcp through the endpoint mapper. It writes the applet's
// parameters through Remote Registry when the spec has any.
//
// The zero value is ready to use: pipe then TCP, sealed RPC with verified
// responses, a 30 s wait for SERVICE_RUNNING, and the service marked for
// deletion once it runs. Set the fields before the first Launch; a
// Launcher is safe for concurrent use afterwards.
//
// It does not copy the applet (see deploy.Copy) and does not choose
// between launchers (see package session).
type Launcher struct {
	// Transports are tried in order; nil means pipe, then TCP. Only
	// ErrLaunchUnsupported and ErrUnreachable move on to the next one.
	Transports []Transport
	// Level is the RPC protection of every connection; the zero value is
	// adauth.RPCPrivacy (sealed, responses verified: a tampered response
	// fails with an error matching adauth.ErrIntegrity).
	Level adauth.RPCLevel
	// ServicePrefix is used when the spec has none; empty means
	// DefaultServicePrefix.
	ServicePrefix string
	// KeepService leaves the service installed while the applet runs
	// (Handle.Stop deletes it). By default it is marked for deletion as
	// soon as it runs, so nothing outlives the applet.
	KeepService bool
	// StartTimeout bounds the wait for SERVICE_RUNNING; 0 means 30 s.
	StartTimeout time.Duration
	// StopTimeout bounds the wait for SERVICE_STOPPED in cleanup; 0 means
	// 10 s.
	StopTimeout time.Duration
	// Backoff paces polling and retries.
	Backoff Backoff
	// EPMPort is the endpoint mapper's TCP port; 0 means 135.
	EPMPort int
	// Logger receives progress; nil discards. Credentials are never
	// logged.
	Logger *slog.Logger
	// Rand supplies the random service name suffix; nil means
	// crypto/rand.
	Rand io.Reader
	// QueryPID makes Launch ask for the applet's process ID
	// (QueryServiceStatusEx) on an extra connection, for Handle.PID. Off
	// by default: it costs one more bind.
	QueryPID bool
}

// Backoff is an exponential schedule for polling (a service's state) and
// retries (a busy named pipe), bounded by the caller's context. The zero
// value waits 10 ms, then doubles up to 500 ms.
type Backoff struct {
	// Initial is the first wait; 0 means 10 ms.
	Initial time.Duration
	// Max caps each wait; 0 means 500 ms.
	Max time.Duration
}

// backoff returns l.Backoff as rpcauth schedules it.
func (l *Launcher) backoff() rpcauth.Backoff { return rpcauth.Backoff(l.Backoff) }

// Name returns "scm", the method name technicians see in session events
// and errors.
func (l *Launcher) Name() string { return "scm" }

func (l *Launcher) log() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}

func (l *Launcher) transports() []Transport {
	if len(l.Transports) > 0 {
		return l.Transports
	}
	return []Transport{TransportPipe, TransportTCP}
}

func (l *Launcher) startWait() time.Duration {
	if l.StartTimeout > 0 {
		return l.StartTimeout
	}
	return defaultWait
}

func (l *Launcher) stopWait() time.Duration {
	if l.StopTimeout > 0 {
		return l.StopTimeout
	}
	return 10 * time.Second
}

// cleanupContext returns a context for undoing changes after ctx failed or
// was cancelled: it keeps ctx's values, not its cancellation, and has its
// own deadline.
func (l *Launcher) cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), l.stopWait()+5*time.Second)
}

// serviceName returns prefix + 8 random hex digits.
func (l *Launcher) serviceName(spec deploy.LaunchSpec) (string, error) {
	prefix := spec.ServicePrefix
	if prefix == "" {
		prefix = l.ServicePrefix
	}
	if prefix == "" {
		prefix = DefaultServicePrefix
	}
	r := l.Rand
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("random service name: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// dialSCM binds svcctl over the first transport that connects: those in
// prefer first, then the launcher's.
func (l *Launcher) dialSCM(ctx context.Context, t target, prefer ...Transport) (svcctl.SvcctlClient, *rpcConn, error) {
	var last error
	order := append(append([]Transport(nil), prefer...), l.transports()...)
	for i, tr := range order {
		if slices.Contains(order[:i], tr) {
			continue
		}
		cli, conn, err := l.svcctlOver(ctx, t, tr)
		if err == nil {
			return cli, conn, nil
		}
		last = err
		if !fallsBack(err) {
			break
		}
	}
	return nil, nil, last
}

// svcctlOver binds svcctl over one transport; errors are *LaunchError.
func (l *Launcher) svcctlOver(ctx context.Context, t target, tr Transport) (svcctl.SvcctlClient, *rpcConn, error) {
	var (
		cli  svcctl.SvcctlClient
		conn *rpcConn
		err  error
		ep   string
	)
	switch tr {
	case TransportPipe:
		ep = pipeEndpoint(t, "svcctl")
		cli, conn, err = l.svcctlOverPipe(ctx, t)
	case TransportTCP:
		ep = "svcctl over TCP on " + t.Addr
		cli, conn, err = l.svcctlOverTCP(ctx, t)
	default:
		return nil, nil, fmt.Errorf("remotereg: unknown transport %v", tr)
	}
	if err != nil {
		return nil, nil, l.failure("connect scm", endpointOf(err, ep), err)
	}
	conn.transport = tr
	return cli, conn, nil
}

// fallsBack reports whether a failure on one transport should move on to
// the next.
func fallsBack(err error) bool {
	return errors.Is(err, deploy.ErrLaunchUnsupported) || errors.Is(err, deploy.ErrUnreachable)
}

// launchTarget validates spec, writes its parameters (if any) through Remote
// Registry, then creates, starts and waits for the applet's service on
// the first transport that can, journaling every change in j before it is
// relied on. On failure it undoes what it did (even when ctx was
// cancelled) and returns a *deploy.LaunchError.
func (l *Launcher) launchTarget(ctx context.Context, t target, spec deploy.LaunchSpec, j journal) (*Handle, error) {
	if err := spec.Validate(); err != nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: "validate", Kind: deploy.ErrBadSpec, Err: err}
	}
	h := &Handle{l: l, t: t, j: j}
	if len(spec.Params) > 0 {
		cli, conn, changes, err := l.winreg(ctx, t, j)
		h.changes = append(h.changes, changes...)
		if err != nil {
			h.undoChanges(ctx)
			return nil, err
		}
		keys, err := l.writeParams(ctx, cli, t, spec, j)
		conn.close(ctx)
		h.changes = append(h.changes, keys...)
		if err != nil {
			h.undoChanges(ctx)
			return nil, l.failure("write parameters", conn.endpoint, err)
		}
	}
	var last error
	var earlier []string
	for _, tr := range l.transports() {
		err := l.launchOn(ctx, t, tr, spec, j, h)
		if err == nil {
			return h, nil
		}
		if last != nil {
			earlier = append(earlier, attemptSummary(last))
		}
		last = err
		l.log().Info("remotereg launch attempt failed", "host", t.Addr, "transport", tr.String(), "err", err)
		if !fallsBack(err) || ctx.Err() != nil {
			break
		}
	}
	h.undoChanges(ctx)
	// The error is the last attempt's; the diagnosis also tells what the
	// earlier transports said, in words only, so that errors.Is still
	// matches exactly the last attempt's kind.
	var le *deploy.LaunchError
	if len(earlier) > 0 && errors.As(last, &le) {
		le.Diagnosis.Summary = strings.TrimSpace(le.Diagnosis.Summary + " Before that: " + strings.Join(earlier, " "))
	}
	return nil, last
}

// attemptSummary describes a failed attempt in one sentence.
func attemptSummary(err error) string {
	var le *deploy.LaunchError
	if errors.As(err, &le) && le.Diagnosis.Summary != "" {
		return le.Diagnosis.Summary
	}
	return err.Error() + "."
}

// launchOn runs create, start and wait on one transport. On failure after
// the service exists, it removes the service.
func (l *Launcher) launchOn(ctx context.Context, t target, tr Transport, spec deploy.LaunchSpec, j journal, h *Handle) (err error) {
	cli, conn, err := l.svcctlOver(ctx, t, tr)
	if err != nil {
		return err
	}
	ep := conn.endpoint
	m, err := openSCM(ctx, cli, scManagerConnect|scManagerCreateService)
	if err != nil {
		conn.close(context.WithoutCancel(ctx))
		return l.failure("open scm", ep, err)
	}
	name, err := l.serviceName(spec)
	if err != nil {
		m.close(context.WithoutCancel(ctx))
		conn.close(context.WithoutCancel(ctx))
		return l.failure("create service", ep, err)
	}
	// The name is chosen and journaled (persisted) before CreateService,
	// so that a crash or a cancel during the call leaves a record of it.
	change := Change{Kind: ChangeService, Addr: t.Addr, Name: name, Transport: tr}
	if err := record(ctx, j, change); err != nil {
		_ = resolve(context.WithoutCancel(ctx), j, change) // nothing was created
		m.close(context.WithoutCancel(ctx))
		conn.close(context.WithoutCancel(ctx))
		return l.failure("journal", ep, err)
	}
	svc, err := m.create(ctx, name, name, spec.CommandLine(), StartDemand)
	if err != nil {
		m.close(ctx)
		conn.close(context.WithoutCancel(ctx))
		l.afterFailedCreate(ctx, t, j, change, err)
		return l.failure("create service", ep, err)
	}
	l.log().Info("service created", "host", t.Addr, "transport", tr.String(), "service", name)
	defer func() {
		if err == nil {
			return
		}
		// A call cancelled in flight leaves go-msrpc's connection unusable,
		// so after a cancellation, or when cleanup on the launch
		// connection fails, remove the service over a fresh one.
		rerr := errors.New("launch context ended")
		if ctx.Err() == nil {
			cctx, cancel := l.cleanupContext(ctx)
			rerr = l.remove(cctx, m, svc, false)
			cancel()
		}
		if ctx.Err() == nil {
			m.closeService(ctx, svc)
			m.close(ctx)
		} // else the handles die with the connection (context rundown)
		conn.close(ctx)
		cctx, cancel := l.cleanupContext(ctx)
		defer cancel()
		if rerr != nil {
			l.log().Info("removing the service over a fresh connection", "service", name, "reason", rerr)
			rerr = l.undo(cctx, t, change)
		}
		if rerr != nil {
			// The service, and perhaps a process it started, may still be
			// there: the journal keeps the entry for the session's
			// cleanup, and the error says so, so that no second launcher
			// starts another applet beside it.
			l.log().Warn("cleanup after failed launch", "service", name, "err", rerr)
			err = leftBehind(err, "service "+name, rerr)
			return
		}
		_ = resolve(cctx, j, change)
	}()
	if err := m.start(ctx, svc); err != nil {
		return l.failure("start service", ep, err)
	}
	wctx, cancel := context.WithTimeout(ctx, l.startWait())
	defer cancel()
	if _, err := m.waitState(wctx, svc, StateRunning, l.backoff()); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", err, ErrorServiceRequestTimeout)
		}
		return l.failure("wait running", ep, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.transport, h.conn, h.scm, h.svc, h.service = tr, conn, m, svc, name
	h.changes = append(h.changes, change)
	if !l.KeepService {
		if err := m.delete(ctx, svc); err != nil {
			l.log().Warn("mark service for deletion", "service", name, "err", err)
		} else {
			h.marked = true
		}
	}
	if l.QueryPID {
		h.pid = l.queryPID(ctx, t, tr, name)
	}
	l.log().Info("applet running", "host", t.Addr, "transport", tr.String(), "service", name, "pid", h.pid, "marked_for_deletion", h.marked)
	return nil
}

// afterFailedCreate deals with the journaled intent c of a create call
// that failed with err. A Win32 error is the server's answer that it
// created nothing (ERROR_SERVICE_EXISTS included: that service is not
// ours and is left alone), so the intent is resolved. Any other failure
// (a fault, a lost connection, a cancel) may have left the object behind:
// it is removed by name over a fresh connection. After an interrupted call
// (not a fault) the intent stays journaled even when the removal
// succeeded, because the server may still carry out the abandoned call
// afterwards; undoing the journal later removes it then, and an object
// that is gone by then counts as undone.
func (l *Launcher) afterFailedCreate(ctx context.Context, t target, j journal, c Change, err error) {
	cctx, cancel := l.cleanupContext(ctx)
	defer cancel()
	var w Win32Error
	if errors.As(err, &w) {
		_ = resolve(cctx, j, c)
		return
	}
	if uerr := l.undo(cctx, t, c); uerr != nil {
		l.log().Warn("removing after a failed create", "change", c.String(), "err", uerr)
		return
	}
	if _, fault := rpcauth.FaultStatus(err); fault {
		_ = resolve(cctx, j, c)
	}
}

// queryPID asks for the service's process ID on a connection of its own:
// a server that does not implement QueryServiceStatusEx answers with a
// fault, and go-msrpc closes the connection on a fault, which must not
// take the handle's connection with it. It returns 0 when it cannot tell.
func (l *Launcher) queryPID(ctx context.Context, t target, tr Transport, name string) uint32 {
	cli, conn, err := l.svcctlOver(ctx, t, tr)
	if err != nil {
		return 0
	}
	defer conn.close(context.WithoutCancel(ctx))
	m, err := openSCM(ctx, cli, scManagerConnect)
	if err != nil {
		return 0
	}
	defer m.close(context.WithoutCancel(ctx))
	h, err := m.open(ctx, name, serviceQueryStatus)
	if err != nil {
		return 0
	}
	defer m.closeService(context.WithoutCancel(ctx), h)
	return m.pid(ctx, h)
}

// Handle is an applet launched by remotereg as a service. It implements
// deploy.Handle. It keeps its SCM connection open until Stop.
type Handle struct {
	l *Launcher
	t target
	j journal

	mu        sync.Mutex
	transport Transport
	conn      *rpcConn
	scm       *scm
	svc       *svcctl.Handle
	service   string
	pid       uint32
	marked    bool
	changes   []Change // in the order made
	done      bool     // Stop succeeded
}

var _ deploy.Handle = (*Handle)(nil)

// Service returns the service's name.
func (h *Handle) Service() string { h.mu.Lock(); defer h.mu.Unlock(); return h.service }

// Transport returns the transport the service was created over.
func (h *Handle) Transport() Transport { h.mu.Lock(); defer h.mu.Unlock(); return h.transport }

// PID returns the applet's process ID as the SCM reported it, or 0.
func (h *Handle) PID() uint32 { h.mu.Lock(); defer h.mu.Unlock(); return h.pid }

// MarkedForDeletion reports whether the service was marked for deletion
// once it ran (it disappears when the applet stops).
func (h *Handle) MarkedForDeletion() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.marked }

// Running reports whether the service is in SERVICE_RUNNING. A service
// that is gone (it stopped after being marked for deletion) is not
// running, and that is not an error. When the SCM connection was lost,
// Running connects again once.
func (h *Handle) Running(ctx context.Context) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done || h.service == "" {
		return false, nil
	}
	st, err := h.withSCM(ctx, func(m *scm, svc *svcctl.Handle) (*svcctl.ServiceStatus, error) {
		return m.status(ctx, svc)
	})
	if errors.Is(err, errServiceGone) || errors.Is(err, ErrorServiceDoesNotExist) || errors.Is(err, ErrorInvalidHandle) {
		return false, nil
	}
	if err != nil {
		return false, h.l.failure("query service", h.endpoint(), err)
	}
	return State(st.CurrentState) == StateRunning, nil
}

// errServiceGone: the service no longer exists (after a reconnect).
var errServiceGone = errors.New("service no longer exists")

// errMarkedNoReopen: the connection to a service marked for deletion was
// lost, and the SCM gives no new handle to it.
var errMarkedNoReopen = errors.New("the service is marked for deletion and cannot be reopened")

func (h *Handle) endpoint() string {
	if h.conn != nil {
		return h.conn.endpoint
	}
	return h.t.Addr
}

// withSCM runs op on the handle's connection; when that fails below the
// SCM (a lost connection rather than a Win32 error), it connects again
// over the same transport, reopens the service by name, and runs op once
// more.
func (h *Handle) withSCM(ctx context.Context, op func(*scm, *svcctl.Handle) (*svcctl.ServiceStatus, error)) (*svcctl.ServiceStatus, error) {
	if h.scm != nil {
		st, err := op(h.scm, h.svc)
		var w Win32Error
		if err == nil || errors.As(err, &w) {
			return st, err
		}
		// The connection is broken, or a call on it was cancelled, which
		// leaves go-msrpc's connection unusable: drop it either way.
		h.conn.close(ctx)
		h.conn, h.scm, h.svc = nil, nil, nil
		if ctx.Err() != nil {
			return st, err
		}
		h.l.log().Info("SCM connection lost; reconnecting", "host", h.t.Addr, "service", h.service, "err", err)
	}
	h.dropConn(ctx)
	cli, conn, err := h.l.svcctlOver(ctx, h.t, h.transport)
	if err != nil {
		return nil, err
	}
	m, err := openSCM(ctx, cli, scManagerConnect)
	if err != nil {
		conn.close(context.WithoutCancel(ctx))
		return nil, err
	}
	svc, err := m.open(ctx, h.service, serviceQueryStatus|serviceStop|accessDelete)
	if errors.Is(err, ErrorServiceMarkedForDelete) {
		// Windows refuses new handles to a service marked for deletion:
		// it disappears when the applet exits, and cannot be reached
		// through the SCM until then.
		err = fmt.Errorf("%w: %w", errMarkedNoReopen, err)
	}
	if errors.Is(err, ErrorServiceDoesNotExist) {
		m.close(context.WithoutCancel(ctx))
		conn.close(context.WithoutCancel(ctx))
		return nil, errServiceGone
	}
	if err != nil {
		m.close(context.WithoutCancel(ctx))
		conn.close(context.WithoutCancel(ctx))
		return nil, err
	}
	h.conn, h.scm, h.svc = conn, m, svc
	return op(m, svc)
}

// dropConn closes the handle's SCM connection, if any. It runs even when
// ctx has ended, but for at most a few seconds: the close calls are a
// courtesy to the server, and the connection is closed regardless.
func (h *Handle) dropConn(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if h.scm != nil {
		h.scm.closeService(cctx, h.svc)
		h.scm.close(cctx)
	}
	h.conn.close(cctx)
	h.conn, h.scm, h.svc = nil, nil, nil
}

// Stop stops the service, deletes it (if it was not already marked for
// deletion), removes the parameter key and restores any service state
// remotereg changed, resolving each journal entry it undoes. When the SCM
// connection was lost it connects again. It is safe to call more than
// once: after a failure, a later call retries what is left; after
// success, it returns nil.
func (h *Handle) Stop(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return nil
	}
	var errs []error
	if i := slices.IndexFunc(h.changes, func(c Change) bool { return c.Kind == ChangeService }); i >= 0 {
		_, err := h.withSCM(ctx, func(m *scm, svc *svcctl.Handle) (*svcctl.ServiceStatus, error) {
			return nil, h.l.remove(ctx, m, svc, h.marked)
		})
		ep := h.endpoint()
		h.dropConn(ctx)
		if err != nil && !errors.Is(err, errServiceGone) {
			errs = append(errs, h.l.failure("stop service", ep, err))
		} else {
			c := h.changes[i]
			h.changes = slices.Delete(h.changes, i, i+1)
			if rerr := resolve(ctx, h.j, c); rerr != nil {
				h.l.log().Warn("journal resolve", "change", c.String(), "err", rerr)
			}
		}
	}
	if err := h.undoChangesLocked(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		h.done = true
	}
	return errors.Join(errs...)
}

// undoChanges undoes the registry keys and service states in reverse.
func (h *Handle) undoChanges(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.undoChangesLocked(ctx); err != nil {
		h.l.log().Warn("cleanup after failed launch", "host", h.t.Addr, "err", err)
	}
}

// undoChangesLocked undoes the changes other than the service, newest
// first, and resolves their journal entries; when ctx has ended (the
// launch was cancelled) the entries stay journaled even so, because a call
// abandoned by the cancel (a BaseRegCreateKey, say) may still be carried
// out by the server after the removal. Undoing the journal later repeats
// the removal, and a key that is gone counts as undone.
func (h *Handle) undoChangesLocked(ctx context.Context) error {
	keep := ctx.Err() != nil
	cctx, cancel := h.l.cleanupContext(ctx)
	defer cancel()
	var errs []error
	var left []Change
	for i := len(h.changes) - 1; i >= 0; i-- {
		c := h.changes[i]
		if c.Kind == ChangeService {
			left = append(left, c)
			continue
		}
		if err := h.l.undo(cctx, h.t, c); err != nil {
			errs = append(errs, err)
			left = append(left, c)
			continue
		}
		if !keep {
			_ = resolve(cctx, h.j, c)
		}
	}
	h.changes = left
	return errors.Join(errs...)
}
