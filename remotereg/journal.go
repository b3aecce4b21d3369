package remotereg

import (
	"context"
	"errors"
	"fmt"

	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
)

// ChangeKind names what a Change made on the target.
type ChangeKind string

// The kinds of change remotereg makes.
const (
	// ChangeService: remotereg created service Name.
	ChangeService ChangeKind = "remotereg.service"
	// ChangeRegistryKey: remotereg created key Name under HKLM.
	ChangeRegistryKey ChangeKind = "remotereg.registry-key"
	// ChangeServiceState: remotereg changed service Name's start type or
	// started it; StartType and WasRunning hold the original state.
	ChangeServiceState ChangeKind = "remotereg.service-state"
)

// Change is one change remotereg made on a target, in a form that can be
// stored (it is plain data, JSON-friendly) and undone later with
// Launcher.Undo, even by another process.
type Change struct {
	Kind ChangeKind `json:"kind"`
	// Host is the target, as in target.Addr.
	Addr string `json:"host"`
	// Name is the service name, or the key path under HKLM.
	Name string `json:"name"`
	// StartType and WasRunning are the original state of a service whose
	// state remotereg changed (ChangeServiceState only).
	StartType  StartType `json:"start_type,omitempty"`
	WasRunning bool      `json:"was_running,omitempty"`
	// Transport is how the SCM was reached when the service was created
	// or changed; Undo tries it first (service kinds only).
	Transport Transport `json:"transport,omitempty"`
}

// String describes the change for logs.
func (c Change) String() string {
	switch c.Kind {
	case ChangeServiceState:
		return fmt.Sprintf("%s on %s: %s (was %v, running=%v)", c.Kind, c.Addr, c.Name, c.StartType, c.WasRunning)
	}
	return fmt.Sprintf("%s on %s: %s", c.Kind, c.Addr, c.Name)
}

// journal receives the changes remotereg makes on a target so that they
// can be undone even if this process dies. Record is called before the
// call that makes a change (and must persist it before it returns),
// Resolve after it has been undone or turned out not to have been made.
// deploy.Journal is adapted to it by the caller.
//
// A nil journal is allowed: changes are then only undone by Handle.Stop
// and by the launcher's own cleanup after a failure.
type journal interface {
	Record(ctx context.Context, c Change) error
	Resolve(ctx context.Context, c Change) error
}

func record(ctx context.Context, j journal, c Change) error {
	if j == nil {
		return nil
	}
	return j.Record(ctx, c)
}

func resolve(ctx context.Context, j journal, c Change) error {
	if j == nil {
		return nil
	}
	return j.Resolve(ctx, c)
}

// Undo reverts one change on t: it stops and deletes a service remotereg
// created, deletes a registry key it created, or restores a service's
// start type and stops it if it was not running. A change that is already
// undone (the service or key is gone) is not an error.
//
// Undo does not talk to the journal; the caller resolves the entry.
func (l *Launcher) undo(ctx context.Context, t target, c Change) error {
	switch c.Kind {
	case ChangeService, ChangeServiceState:
		cli, conn, err := l.dialSCM(ctx, t, c.Transport)
		if err != nil {
			return err
		}
		defer conn.close(context.WithoutCancel(ctx))
		m, err := openSCM(ctx, cli, scManagerConnect)
		if err != nil {
			return l.failure("open scm", conn.endpoint, err)
		}
		defer m.close(context.WithoutCancel(ctx))
		if c.Kind == ChangeService {
			return l.failure("remove service", conn.endpoint, l.removeByName(ctx, m, c.Name))
		}
		return l.failure("restore service state", conn.endpoint, l.restoreState(ctx, m, c))
	case ChangeRegistryKey:
		cli, conn, err := l.winregOverPipe(ctx, t)
		if err != nil {
			return l.failure("connect winreg", endpointOf(err, pipeEndpoint(t, "winreg")), err)
		}
		defer conn.close(context.WithoutCancel(ctx))
		return l.failure("delete registry key", conn.endpoint, deleteKey(ctx, cli, c.Name))
	}
	return fmt.Errorf("remotereg: unknown change kind %q", c.Kind)
}

// removeByName stops and deletes service name; a missing service is fine.
func (l *Launcher) removeByName(ctx context.Context, m *scm, name string) error {
	h, err := m.open(ctx, name, serviceQueryStatus|serviceStop|accessDelete)
	if errors.Is(err, ErrorServiceDoesNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.closeService(context.WithoutCancel(ctx), h)
	return l.remove(ctx, m, h, false)
}

// remove stops the service and, unless marked is set (already marked for
// deletion), deletes it.
func (l *Launcher) remove(ctx context.Context, m *scm, h *svcctl.Handle, marked bool) error {
	var errs []error
	if err := m.stop(ctx, h); err != nil &&
		!errors.Is(err, ErrorServiceNotActive) && !errors.Is(err, ErrorServiceCannotAcceptCtl) && !errors.Is(err, ErrorServiceDoesNotExist) {
		errs = append(errs, fmt.Errorf("stop: %w", err))
	} else if err == nil {
		wctx, cancel := context.WithTimeout(ctx, l.stopWait())
		_, werr := m.waitState(wctx, h, StateStopped, l.backoff())
		cancel()
		if werr != nil && !errors.Is(werr, ErrorServiceDoesNotExist) && !errors.Is(werr, ErrorInvalidHandle) {
			errs = append(errs, fmt.Errorf("wait stopped: %w", werr))
		}
	}
	if !marked {
		if err := m.delete(ctx, h); err != nil && !errors.Is(err, ErrorServiceMarkedForDelete) && !errors.Is(err, ErrorServiceDoesNotExist) {
			errs = append(errs, fmt.Errorf("delete: %w", err))
		}
	}
	return errors.Join(errs...)
}

// restoreState puts a service back to the start type and running state
// recorded in c.
func (l *Launcher) restoreState(ctx context.Context, m *scm, c Change) error {
	h, err := m.open(ctx, c.Name, serviceQueryStatus|serviceQueryConfig|serviceChangeConfig|serviceStop)
	if errors.Is(err, ErrorServiceDoesNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.closeService(context.WithoutCancel(ctx), h)
	var errs []error
	if !c.WasRunning {
		if err := m.stop(ctx, h); err == nil {
			wctx, cancel := context.WithTimeout(ctx, l.stopWait())
			if _, err := m.waitState(wctx, h, StateStopped, l.backoff()); err != nil {
				errs = append(errs, fmt.Errorf("wait stopped: %w", err))
			}
			cancel()
		} else if !errors.Is(err, ErrorServiceNotActive) {
			errs = append(errs, fmt.Errorf("stop: %w", err))
		}
	}
	cfg, err := m.config(ctx, h)
	if err != nil {
		errs = append(errs, fmt.Errorf("query config: %w", err))
	} else if StartType(cfg.StartType) != c.StartType {
		if err := m.setStartType(ctx, h, c.StartType); err != nil {
			errs = append(errs, fmt.Errorf("restore start type %v: %w", c.StartType, err))
		}
	}
	return errors.Join(errs...)
}
