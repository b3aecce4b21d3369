package session

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

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
// the way (the grant's facts, the preflight, the launchers already
// tried). A launch diagnosis never sends the technician to a launch
// method this session has already tried, nor to "another launch method"
// when none is left; after a fallback in which every launcher failed it
// names each attempt (see afterFallback).
func (s *Session) diagnose(step Step, err error) diag.Diagnosis {
	if err == nil {
		return diag.Diagnosis{}
	}
	s.mu.Lock()
	pre := s.res.Preflight
	attempts := append([]Attempt(nil), s.res.Attempts...)
	s.mu.Unlock()
	if step != StepLaunch {
		return s.explain(step, err, pre)
	}
	if errors.Is(err, ErrLaunchFailed) && len(attempts) > 1 {
		return afterFallback(attempts)
	}
	var tried []string
	for _, a := range attempts {
		tried = append(tried, a.Launcher)
	}
	// Per attempt, the failing launcher is not in Attempts yet; at the
	// end of the step it is.
	left := len(s.c.cfg.Launchers) - len(attempts)
	if !errors.Is(err, ErrLaunchFailed) {
		left--
	}
	d := s.explain(step, err, pre)
	d.Fix = withoutTried(d.Fix, tried, left <= 0)
	return d
}

// explain is diagnose without the launch history.
func (s *Session) explain(step Step, err error, pre *deploy.Preflight) diag.Diagnosis {
	local := false
	if g := s.target.Grant; g != nil {
		local = g.Facts.LocalAccount
	}
	var se *Error
	if errors.As(err, &se) && !se.Diagnosis.IsZero() {
		return se.Diagnosis
	}
	var ae *adauth.AuthError
	if errors.As(err, &ae) && !ae.Diagnosis.IsZero() {
		return ae.Diagnosis
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
			d := le.Diagnosis
			if errors.Is(le, deploy.ErrUnreachable) && pre != nil && pre.RemoteRegistryOff {
				d.Summary += " Remote Registry is stopped on the target too."
			}
			if errors.Is(le, deploy.ErrNotExecutable) {
				d = s.withApplet(d)
			}
			return d
		}
	}
	var ce *deploy.CopyError
	if errors.As(err, &ce) && !ce.Diagnosis.IsZero() {
		return ce.Diagnosis
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

// withApplet adds to an ERROR_BAD_EXE_FORMAT diagnosis which applet
// variant was copied and what the computer reported, when the session
// chose among variants.
func (s *Session) withApplet(d diag.Diagnosis) diag.Diagnosis {
	s.mu.Lock()
	arch, applet := s.res.Arch, s.res.AppletArch
	s.mu.Unlock()
	if applet == "" {
		return d
	}
	d.Summary += " The " + applet + " applet was copied"
	if arch != "" {
		d.Summary += fmt.Sprintf(" to a computer that reports its architecture as %q", arch)
	}
	d.Summary += "."
	d.Fix += " Give a build for this computer's architecture as a variant (deploy.Applets; connect -applet windows/ARCH=FILE)."
	return d
}

// preflightNotes turns preflight findings into warnings.
func preflightNotes(p *deploy.Preflight, local bool) []diag.Diagnosis {
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

// afterFallback explains a launch step in which every launcher failed:
// the code is the last attempt's, the summary names each attempt and
// what it met, and the fix gathers each attempt's fix without the
// advice to try a method that was tried.
func afterFallback(attempts []Attempt) diag.Diagnosis {
	var names, tried []string
	for _, a := range attempts {
		names = append(names, displayName(a.Launcher))
		tried = append(tried, a.Launcher)
	}
	d := diag.Diagnosis{Code: attempts[len(attempts)-1].Diagnosis.Code}
	if d.Code == "" {
		d.Code = diag.Other
	}
	var sum strings.Builder
	fmt.Fprintf(&sum, "Every launch method failed (%s).", strings.Join(names, ", then "))
	var fixes []string
	for i, a := range attempts {
		what := a.Diagnosis.Summary
		if what == "" && a.Err != nil {
			what = a.Err.Error()
		}
		fmt.Fprintf(&sum, " %s: %s", names[i], what)
		if f := withoutTried(a.Diagnosis.Fix, tried, true); f != "" && !slices.Contains(fixes, names[i]+": "+f) {
			fixes = append(fixes, names[i]+": "+f)
		}
	}
	d.Summary = sum.String()
	if len(fixes) == 0 {
		d.Fix = "No launch method works on this computer as it is set up: remove the cause of one of the failures above."
	} else {
		d.Fix = "Remove the cause of one of the failures. " + strings.Join(fixes, " ")
	}
	return d
}

// displayName is a launcher's name as a technician reads it ("scm" is
// "SCM").
func displayName(name string) string {
	if name == "" {
		return "(unnamed launcher)"
	}
	return strings.ToUpper(name)
}

var (
	reAnotherMethod  = regexp.MustCompile(`(?i),? or use another launch method`)
	reAnotherNeeded  = regexp.MustCompile(`(?i)\s*Another launch method is needed for this computer\.?`)
	reSpaceBeforeDot = regexp.MustCompile(`\s+([.,;])`)
)

// withoutTried returns fix without its advice to use one of the tried
// launch methods (", or use the SCM launcher", ", or launch it with
// WMI"), and, when noneLeft, without its advice to use another launch
// method. It does not rewrite any other part of the fix.
func withoutTried(fix string, tried []string, noneLeft bool) string {
	if fix == "" {
		return ""
	}
	for _, n := range tried {
		if n == "" {
			continue
		}
		re := regexp.MustCompile(`(?i),? or (?:use|launch it with|launch with|try) (?:the )?` + regexp.QuoteMeta(n) + `(?: launcher)?\b`)
		fix = re.ReplaceAllString(fix, "")
	}
	if noneLeft {
		fix = reAnotherMethod.ReplaceAllString(fix, "")
		fix = reAnotherNeeded.ReplaceAllString(fix, "")
	}
	fix = reSpaceBeforeDot.ReplaceAllString(fix, "$1")
	return strings.TrimSpace(fix)
}
