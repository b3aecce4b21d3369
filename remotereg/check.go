package remotereg

import (
	"context"

	"github.com/lanconnect/lanconnect/deploy"
)

var _ deploy.Checker = (*Launcher)(nil)

// Check implements deploy.Checker: it tells, without changing anything
// on t.Grant's computer, whether the SCM launcher would work there, and
// reads the settings a session's diagnosis uses. Over the launcher's
// transports it opens the Service Control Manager with
// SC_MANAGER_CONNECT, queries the Remote Registry service's status and
// configuration (read access only), and opens the SCM again with
// SC_MANAGER_CREATE_SERVICE, closing the handle at once (nothing is
// created). Only when Remote Registry is already running does it open
// \pipe\winreg (on Windows, opening that pipe trigger-starts a stopped
// Remote Registry) and read, with KEY_READ, the values of
// deploy.Preflight. It journals nothing, starts and stops nothing, and
// writes no value. A refused create-service access is a *LaunchError of
// Kind deploy.ErrAccessDenied with the diagnosis Launch gives.
func (l *Launcher) Check(ctx context.Context, t *deploy.Target) (*deploy.Probe, error) {
	if t == nil || t.Grant == nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: "check", Err: deploy.ErrNoGrant}
	}
	tg := targetFromGrant(t.Grant)
	p, err := l.check(ctx, tg)
	if err != nil {
		refineAccessDenied(err, t.Grant.Facts.LocalAccount)
	}
	return p, err
}

func (l *Launcher) check(ctx context.Context, t target) (*deploy.Probe, error) {
	cli, conn, err := l.dialSCM(ctx, t)
	if err != nil {
		return nil, err
	}
	defer conn.close(context.WithoutCancel(ctx))
	p := &deploy.Probe{}
	m, err := openSCM(ctx, cli, scManagerConnect)
	if err != nil {
		return p, l.failure("open scm", conn.endpoint, err)
	}
	p.RemoteRegistry = l.remoteRegistryState(ctx, m, t.Addr)
	m.close(ctx)
	// What CreateService needs: the SCM with create-service access.
	m, err = openSCM(ctx, cli, scManagerConnect|scManagerCreateService)
	if err != nil {
		return p, l.failure("open scm", conn.endpoint, err)
	}
	m.close(ctx)
	if p.RemoteRegistry != deploy.ServiceRunning {
		return p, nil
	}
	// Remote Registry runs already: opening its pipe starts nothing.
	rc, rconn, err := l.winregOverPipe(ctx, t)
	if err != nil {
		l.log().Debug("check: winreg unavailable", "host", t.Addr, "err", err)
		return p, nil
	}
	defer rconn.close(context.WithoutCancel(ctx))
	s, err := readValues(ctx, rc, keyRead)
	if err != nil {
		l.log().Debug("check: registry values", "host", t.Addr, "err", err)
	}
	p.Settings = s
	return p, nil
}

// remoteRegistryState returns the Remote Registry service's state through
// m (read access only): deploy.ServiceRunning, ServiceStopped or
// ServiceDisabled, or "" when the service cannot be opened or queried.
func (l *Launcher) remoteRegistryState(ctx context.Context, m *scm, addr string) string {
	h, err := m.open(ctx, remoteRegistryService, serviceQueryStatus|serviceQueryConfig)
	if err != nil {
		l.log().Debug("check: open Remote Registry failed", "host", addr, "err", err)
		return ""
	}
	defer m.closeService(ctx, h)
	st, err := m.status(ctx, h)
	if err != nil {
		l.log().Debug("check: query Remote Registry failed", "host", addr, "err", err)
		return ""
	}
	if State(st.CurrentState) == StateRunning {
		return deploy.ServiceRunning
	}
	if c, err := m.config(ctx, h); err == nil && StartType(c.StartType) == StartDisabled {
		return deploy.ServiceDisabled
	}
	return deploy.ServiceStopped
}
