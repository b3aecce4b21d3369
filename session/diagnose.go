package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
)

var (
	diagUAC = diag.Diagnosis{Code: diag.UACRemote,
		Summary: "The account is a local administrator, but UAC remote restrictions take its administrator rights away over the network.",
		Fix: `Use a domain administrator or the built-in Administrator, or set the DWORD LocalAccountTokenFilterPolicy=1 under ` +
			`HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System on the target.`}
	diagGuest = diag.Diagnosis{Code: diag.GuestOnly,
		Summary: `The target uses the "Guest only" sharing model: every network logon with a local account becomes Guest.`,
		Fix: `Set "Network access: Sharing and security model for local accounts" to "Classic" (HKLM\SYSTEM\CurrentControlSet\Control\Lsa\forceguest=0), ` +
			`or use a domain account.`}
)

// diagnose explains a step's failure, using what the session learned on
// the way (the grant's facts, the preflight).
func (s *Session) diagnose(step Step, err error) diag.Diagnosis {
	if err == nil {
		return diag.Diagnosis{}
	}
	var pre *Preflight
	local := false
	s.mu.Lock()
	pre = s.res.Preflight
	s.mu.Unlock()
	if g := s.target.Grant; g != nil {
		local = g.Facts.LocalAccount
	}
	var se *Error
	if errors.As(err, &se) && !se.Diagnosis.IsZero() {
		return se.Diagnosis
	}
	var ae *adauth.AuthError
	if errors.As(err, &ae) && ae.Diagnosis != (diag.Diagnosis{}) {
		return diag.Diagnosis{Code: ae.Diagnosis.Code, Summary: ae.Diagnosis.Summary, Fix: ae.Diagnosis.Fix}
	}
	var le *deploy.LaunchError
	if errors.As(err, &le) {
		if errors.Is(le, deploy.ErrAccessDenied) {
			if pre != nil && pre.ForceGuest != nil && *pre.ForceGuest == 1 {
				return diagGuest
			}
			if local && (pre == nil || pre.LocalAccountTokenFilterPolicy == nil || *pre.LocalAccountTokenFilterPolicy != 1) {
				return diagUAC
			}
		}
		if !le.Diagnosis.IsZero() {
			d := diag.Diagnosis{Code: le.Diagnosis.Code, Summary: le.Diagnosis.Summary, Fix: le.Diagnosis.Fix}
			if errors.Is(le, deploy.ErrUnreachable) && pre != nil && pre.RemoteRegistryOff {
				d.Summary += " Remote Registry is stopped on the target too."
			}
			return d
		}
	}
	var ce *deploy.CopyError
	if errors.As(err, &ce) && !ce.Diagnosis.IsZero() {
		return diag.Diagnosis{Code: ce.Diagnosis.Code, Summary: ce.Diagnosis.Summary, Fix: ce.Diagnosis.Fix}
	}
	var dg diag.Diagnoser
	if errors.As(err, &dg) {
		if d := dg.Diagnose(); !d.IsZero() {
			return d
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, deploy.ErrTimeout):
		return diag.Diagnosis{Code: diag.Timeout, Summary: fmt.Sprintf("The target did not answer in time during %s.", step),
			Fix: "Check that the target is up and that nothing filters its ports 445 and 135."}
	case errors.Is(err, context.Canceled):
		return diag.Diagnosis{Code: diag.Canceled, Summary: fmt.Sprintf("The session was canceled during %s.", step)}
	case errors.Is(err, deploy.ErrAccessDenied):
		if local {
			return diagUAC
		}
		return diag.Diagnosis{Code: diag.AccessDenied, Summary: "The target refused the operation for this account.", Fix: "Use an account that is administrator on the target."}
	}
	return diag.Diagnosis{Code: diag.Other, Summary: fmt.Sprintf("The %s step failed: %v", step, err)}
}

// preflightNotes turns preflight findings into warnings.
func preflightNotes(p *Preflight, local bool) []diag.Diagnosis {
	var out []diag.Diagnosis
	if p.ForceGuest != nil && *p.ForceGuest == 1 && local {
		out = append(out, diagGuest)
	}
	if p.RemoteRegistryOff {
		out = append(out, diag.Diagnosis{Code: diag.RemoteRegistryOff, Summary: "Remote Registry is stopped on the target and could not be used.",
			Fix: "Set the Remote Registry service to Manual or Automatic on the target; lanconnect restores what it changes."})
	}
	if p.LmCompatibilityLevel != nil && *p.LmCompatibilityLevel < 3 {
		out = append(out, diag.Diagnosis{Code: diag.NTLMLevelLow,
			Summary: fmt.Sprintf("The target's LAN Manager authentication level is %d: it still sends LM or NTLMv1 responses itself.", *p.LmCompatibilityLevel),
			Fix:     `Set HKLM\SYSTEM\CurrentControlSet\Control\Lsa\LmCompatibilityLevel to 5 ("Send NTLMv2 response only. Refuse LM & NTLM").`})
	}
	return out
}
