package wmi

import (
	"context"
	"errors"

	"github.com/lanconnect/lanconnect/deploy"
)

var _ deploy.Checker = (*Launcher)(nil)

// Check implements deploy.Checker: it opens a WMI session to t.Grant's
// computer as Launch does (the endpoint mapper's ServerAlive2 and the
// activation of WbemLevel1Login on TCP 135, then the bind and
// IWbemLevel1Login.NTLMLogin on the dynamic port the activation names),
// releases it and reports the dynamic port. It calls no method:
// no Win32_Process.Create, no query. It changes nothing on the target
// and records nothing. A failure is the *deploy.LaunchError Launch would
// give at the same step.
func (l *Launcher) Check(ctx context.Context, t *deploy.Target) (*deploy.Probe, error) {
	if t == nil || t.Grant == nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: StepValidate, Kind: deploy.ErrBadSpec, Err: errors.New("wmi: no grant")}
	}
	s, err := l.session(ctx, targetFromGrant(t.Grant))
	if err != nil {
		return nil, err
	}
	port := s.port
	s.close(ctx)
	return &deploy.Probe{Port: port}, nil
}
