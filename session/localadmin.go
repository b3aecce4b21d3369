package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
)

// ErrNoLocalName is the cause of a session's failure when
// Config.LocalAdmin should help but the host has no name of its own (it
// was given by address): a name the computer claims in its NTLM
// challenge is not used to pick whose password it gets.
var ErrNoLocalName = errors.New("session: the host has no name to look up its local administrator password by")

// authenticate proves credentials on the host, in this order: the local
// administrator source first when Config.LocalAdminFirst; the current
// credentials; after a refusal that ShouldPrompt allows to prompt for (or
// when there are none), the local administrator source; then the prompt
// while ShouldPrompt allows. It returns the grant and where its
// credentials came from (Result.CredentialSource).
func (s *Session) authenticate(ctx context.Context, auth adauth.Authenticator, current adauth.Credentials, ask adauth.PromptFunc) (*adauth.Grant, string, error) {
	cfg := &s.c.cfg
	if cfg.MaxPrompts < 0 {
		ask = nil
	}
	local := cfg.LocalAdmin
	var localErr error
	if local != nil && cfg.LocalAdminFirst {
		g, src, err := s.localAdmin(ctx, auth, nil)
		if err == nil {
			return g, src, nil
		}
		if ctx.Err() != nil {
			return nil, "", err
		}
		s.log.Info("the computer's own administrator credentials did not help; trying the current ones", "err", err)
		local, localErr = nil, err
	}
	var lastErr error
	if !current.IsZero() {
		g, err := auth.Authenticate(ctx, s.currentAddr(), current)
		if err == nil {
			return g, CredentialsGiven, nil
		}
		if !adauth.ShouldPrompt(err) {
			return nil, "", err
		}
		lastErr = err
	}
	if local != nil {
		g, src, err := s.localAdmin(ctx, auth, lastErr)
		if err == nil {
			return g, src, nil
		}
		if ask == nil || ctx.Err() != nil {
			return nil, "", err
		}
		s.log.Info("the computer's own administrator credentials did not help; prompting", "err", err)
	} else if localErr != nil && ask == nil {
		return nil, "", localErr
	}
	if ask == nil && lastErr != nil {
		return nil, "", lastErr
	}
	src := adauth.CredentialSource{MaxPrompts: cfg.MaxPrompts}
	if ask != nil {
		prompt := s.c.guard.Prompt(ask)
		src.Prompt = func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
			s.setStep(StepCredentials, "")
			req.Session, req.Host = s.id, discovery.Clone(s.host)
			if req.Attempt == 1 && lastErr != nil {
				// The first prompt answers the refusal of the current
				// credentials.
				req.Reason, req.Account, req.Diagnosis = lastErr, current.Account(), diag.Diagnosis{}
				var ae *adauth.AuthError
				if errors.As(lastErr, &ae) {
					req.Diagnosis = ae.Diagnosis
				}
			}
			cr, err := prompt(ctx, req)
			if err == nil {
				s.setStep(StepAuthenticate, "")
			}
			return cr, err
		}
	}
	g, err := src.Authenticate(ctx, auth, s.currentAddr())
	if err != nil {
		return nil, "", err
	}
	return g, CredentialsPrompted, nil
}

// localAdmin asks Config.LocalAdmin for the computer's own administrator
// credentials and proves them. They go only to a computer whose NTLM
// challenge announces the host's name (the expected name connect put in
// ctx), and are never remembered. Failures are *Error with a laps-*
// diagnosis (the source's own when it has one).
func (s *Session) localAdmin(ctx context.Context, auth adauth.Authenticator, reason error) (*adauth.Grant, string, error) {
	name := localName(s.host)
	if name == "" || adauth.ExpectedName(ctx) == "" {
		return nil, "", &Error{Name: s.name, Step: StepAuthenticate, Err: ErrNoLocalName, Diagnosis: diag.Diagnosis{
			Code:    diag.LAPSNoName,
			Summary: "LAPS cannot help with " + s.name + ": it was given by address, and the password of a computer is looked up only by the name the console knows it by, never by the name it claims.",
			Fix:     "Connect by the computer's name (DNS or discovery), not by its address."}}
	}
	s.setStep(StepCredentials, "")
	cr, source, err := s.c.cfg.LocalAdmin.LocalAdmin(ctx, adauth.LocalAdminRequest{Name: name, Addr: s.currentAddr(), Host: discovery.Clone(s.host), Reason: reason})
	s.setStep(StepAuthenticate, "")
	if err != nil {
		var d diag.Diagnosis
		var dg diag.Diagnoser
		if errors.As(err, &dg) {
			d = dg.Diagnose()
		}
		if d.IsZero() {
			d = diag.Diagnosis{Code: diag.LAPSFailed, Summary: "LAPS could not supply the password of " + s.name + ": " + err.Error(),
				Fix: "Read the error details; check the directory and the account's LAPS read rights."}
		}
		return nil, "", &Error{Name: s.name, Step: StepAuthenticate, Err: err, Diagnosis: d}
	}
	s.log.Info("trying the computer's own administrator account", "account", cr.Account(), "source", source)
	g, err := auth.Authenticate(ctx, s.currentAddr(), cr)
	if err != nil {
		if adauth.ShouldPrompt(err) {
			d := diag.Diagnosis{Code: diag.LAPSLogonRefused,
				Summary: fmt.Sprintf("LAPS did not help with %s: it refused its own administrator account %s (%s) too.", s.name, cr.Account(), source),
				Fix:     "Check that the computer has applied its current LAPS password, that the account is an administrator, and that NTLM is allowed for local accounts."}
			var ae *adauth.AuthError
			if errors.As(err, &ae) && ae.Diagnosis.Summary != "" {
				d.Summary += " " + ae.Diagnosis.Summary
			}
			return nil, "", &Error{Name: s.name, Step: StepAuthenticate, Err: err, Diagnosis: d}
		}
		return nil, "", err
	}
	return g, source, nil
}

// localName is the name the host's local administrator password is
// looked up by: its NetBIOS name, else its DNS name; "" for an address.
func localName(h discovery.Host) string {
	for _, n := range []string{h.Name, h.DNSName} {
		if n != "" && !isAddrLiteral(n) {
			return n
		}
	}
	return ""
}
