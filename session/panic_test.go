package session_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/session"
)

type panicDeployer struct{}

func (panicDeployer) DeployFile(context.Context, *deploy.Target, string, []byte) (string, error) {
	return "", nil
}

func (panicDeployer) Deploy(context.Context, *deploy.Target, func(done, total int64)) (string, error) {
	var b []byte
	_ = b[5] // what a decoder does with a hostile length
	return "", nil
}

type panicAuth struct{}

func (panicAuth) Authenticate(context.Context, string, adauth.Credentials) (*adauth.Grant, error) {
	panic("decoder bug")
}

// A panic in a step fails that session with ErrPanic; the process and the
// other sessions carry on.
func TestPanicFailsOnlyItsSession(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(h *harness)
		step session.Step
	}{
		{"deploy", func(h *harness) { h.cfg.Deployer = panicDeployer{} }, session.StepDeploy},
		{"authenticate", func(h *harness) { h.cfg.Authenticator = panicAuth{} }, session.StepAuthenticate},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.mod)
			r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
			if r.State != session.Failed || r.Step != c.step || !errors.Is(r.Err, session.ErrPanic) || r.Diagnosis.IsZero() {
				t.Fatalf("result %v %v %v %+v", r.State, r.Step, r.Err, r.Diagnosis)
			}
			for _, j := range h.journals {
				if len(j.open()) != 0 {
					t.Fatalf("journal not undone: %v", j.open())
				}
			}
		})
	}
}
