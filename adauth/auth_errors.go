package adauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// Errors of the Authenticator. Every error it returns is an *AuthError,
// which errors.Is matches against exactly one of these kinds (and against
// its cause: an NT status, a context error, ...).
var (
	// ErrUnreachable: no SMB connection could be opened (port refused or
	// filtered, no route, name not resolved). Other credentials won't help.
	ErrUnreachable = errors.New("adauth: computer unreachable on SMB")
	// ErrLogonFailure: the computer rejected the credentials (unknown
	// user, wrong password), or the peer accepts only NTLMv1.
	ErrLogonFailure = errors.New("adauth: logon failure")
	// ErrAccountRestricted: the account exists but may not log on now
	// (disabled, locked out, expired, password expired, logon hours,
	// network logon right).
	ErrAccountRestricted = errors.New("adauth: account may not log on")
	// ErrNTLMBlocked: the computer refuses NTLM altogether.
	ErrNTLMBlocked = errors.New("adauth: NTLM blocked by the computer")
	// ErrGuest: the computer logged the account on as Guest.
	ErrGuest = errors.New("adauth: logged on as guest")
	// ErrNotAdmin: the account logged on but is not an administrator: one
	// of the admin checks (ADMIN$ write, SCM create-service) failed.
	ErrNotAdmin = errors.New("adauth: not an administrator")
	// ErrNoAdminShare: the computer has no ADMIN$ share.
	ErrNoAdminShare = errors.New("adauth: no ADMIN$ share")
	// ErrSigning: SMB signing could not be agreed or verified.
	ErrSigning = errors.New("adauth: SMB signing failure")
	// ErrEncryption: encryption was required and the computer cannot.
	ErrEncryption = errors.New("adauth: SMB encryption unavailable")
	// ErrDowngrade: the SMB negotiation cannot be trusted: the computer
	// negotiated a dialect below SMBAuthenticator.MinDialect, or the SMB
	// 3.0/3.0.2 negotiation failed validation (a man in the middle
	// changed it). Other credentials won't help.
	ErrDowngrade = errors.New("adauth: SMB negotiation downgraded")
	// ErrSMBProtocol: the peer is not an SMB2/3 server, sent a broken
	// answer, or dropped the connection.
	ErrSMBProtocol = errors.New("adauth: SMB protocol failure")
	// ErrSCM: the Service Control Manager could not be reached for a
	// reason other than access denied.
	ErrSCM = errors.New("adauth: service control manager unavailable")
	// ErrCanceled: the caller's context ended; the error also matches
	// context.Canceled or context.DeadlineExceeded.
	ErrCanceled = errors.New("adauth: canceled")
	// ErrPromptCanceled: the technician canceled the credential prompt.
	ErrPromptCanceled = errors.New("adauth: credential prompt canceled")
	// ErrNoCredentials: there were no credentials to try and no prompt.
	ErrNoCredentials = errors.New("adauth: no credentials")
	// ErrIdentityMismatch: the computer's NTLM CHALLENGE names another
	// computer than the one expected (see WithExpectedName), so no
	// AUTHENTICATE was sent. Other credentials won't help; the name
	// leads to the wrong computer.
	ErrIdentityMismatch = errors.New("adauth: computer identity does not match the expected name")
)

// Steps of an authentication, as named in AuthError.Step.
const (
	StepConnect    = "connect"     // TCP and SMB negotiate
	StepLogon      = "logon"       // NTLM session setup
	StepAccount    = "account"     // looking up a local account's RID over \pipe\lsarpc
	StepAdminShare = "admin-share" // tree connect to ADMIN$ and the write probe
	StepSCM        = "scm"         // OpenSCManager with create-service rights
	StepPrompt     = "prompt"      // asking the console for credentials
)

// AuthError is a failed authentication or admin check. Kind is one of this
// package's sentinel errors; Diagnosis tells the technician what to fix;
// Err is the underlying cause. It never contains a password or hash: the
// account appears by name only.
type AuthError struct {
	Addr      string // the address or name connected to
	Account   string // DOMAIN\user, never the secret
	Step      string // StepConnect, StepLogon, StepAdminShare, StepSCM, StepPrompt
	Kind      error  // ErrUnreachable, ErrLogonFailure, ...
	Diagnosis diag.Diagnosis
	// Retryable reports whether other credentials might succeed, which
	// ShouldPrompt returns. See ShouldPrompt for the rule.
	Retryable bool
	Err       error
	// Facts are what the computer negotiated before the failure (dialect,
	// transport, signing, encryption, identity) when the SMB negotiation
	// completed; nil when it did not. Checks says which admin check
	// failed. It holds no secret.
	Facts *Facts
}

func (e *AuthError) Error() string {
	s := fmt.Sprintf("adauth: %s on %s", e.Step, e.Addr)
	if e.Account != "" {
		s += " as " + e.Account
	}
	s += ": " + e.Diagnosis.Summary
	if e.Err != nil {
		s += " (" + e.Err.Error() + ")"
	}
	return s
}

// Unwrap returns the cause.
func (e *AuthError) Unwrap() error { return e.Err }

// Diagnose returns the diagnosis (diag.Diagnoser).
func (e *AuthError) Diagnose() diag.Diagnosis { return e.Diagnosis }

// Is matches the Kind sentinel.
func (e *AuthError) Is(target error) bool { return target != nil && target == e.Kind }

// classifySetup turns a failed smbconn.Dial into an *AuthError.
func classifySetup(host, account string, local bool, err error) *AuthError {
	ae := &AuthError{Addr: host, Account: account, Step: StepLogon, Err: err}
	var se *smbconn.Error
	var info smbconn.Info
	if errors.As(err, &se) {
		info = se.Info
		if se.Op == "dial" || se.Op == "negotiate" {
			ae.Step = StepConnect
		}
	}
	joined := info.HasChallenge && info.Challenge.DomainJoined()
	var st smbconn.NTStatus
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, smbconn.ErrUnreachable):
		ae.Kind = ErrCanceled
		ae.Diagnosis = diag.Diagnosis{Code: diag.Canceled, Summary: "The authentication was canceled or ran out of time."}
		if errors.Is(err, context.DeadlineExceeded) {
			ae.Diagnosis = diag.Diagnosis{Code: diag.Timeout, Summary: host + " stopped answering during the SMB logon.", Fix: "Try again; check the computer's load and the network."}
		}
	case errors.Is(err, smbconn.ErrRefused):
		ae.Kind, ae.Diagnosis = ErrUnreachable, diagFirewallRefused(host)
	case errors.Is(err, smbconn.ErrFiltered):
		ae.Kind, ae.Diagnosis = ErrUnreachable, diagFirewallFiltered(host)
	case errors.Is(err, smbconn.ErrNoRoute):
		ae.Kind, ae.Diagnosis = ErrUnreachable, diagNoRoute(host)
	case errors.Is(err, smbconn.ErrResolve):
		ae.Kind, ae.Diagnosis = ErrUnreachable, diagNotResolved(host)
	case errors.Is(err, smbconn.ErrUnreachable):
		ae.Kind, ae.Diagnosis = ErrUnreachable, diagNoRoute(host)
	case errors.Is(err, smbconn.ErrGuest):
		ae.Kind, ae.Diagnosis = ErrGuest, diagGuest(account, local, joined)
		// A local account on a "Guest only" computer stays Guest whatever
		// its password; a domain account is not subject to the setting.
		ae.Retryable = joined || !local
	case errors.Is(err, smbconn.ErrIdentityMismatch):
		ae.Kind, ae.Diagnosis = ErrIdentityMismatch, diagIdentityMismatch(host, err)
	case errors.Is(err, smbconn.ErrSigning):
		ae.Kind, ae.Diagnosis = ErrSigning, diagSigning()
	case errors.Is(err, smbconn.ErrDowngrade):
		ae.Kind, ae.Diagnosis = ErrDowngrade, diagDowngrade(info)
		ae.Step = StepConnect
	case errors.Is(err, smbconn.ErrEncryptionUnavailable):
		ae.Kind, ae.Diagnosis = ErrEncryption, diagEncryption()
	case errors.Is(err, smbconn.ErrProtocol):
		ae.Kind, ae.Diagnosis = ErrSMBProtocol, diagProtocol()
	case errors.Is(err, smbconn.ErrConnLost):
		ae.Kind, ae.Diagnosis = ErrSMBProtocol, diagConnLost()
		if ae.Step == StepConnect {
			ae.Diagnosis = diagProtocol()
		}
	case errors.As(err, &st):
		classifyStatus(ae, st, account, info)
	default:
		ae.Kind = ErrSMBProtocol
		ae.Diagnosis = diag.Diagnosis{Code: diag.Other, Summary: "The SMB logon failed unexpectedly.", Fix: "See the error details."}
	}
	return ae
}

// classifyFallback classifies the failure of a logon that tried more than
// one transport: errs[0] is TCP 445 refused or filtered, the last error
// is TCP 139's. When 139 got as far as an SMB session (a logon failure,
// an identity mismatch), that failure is the answer; when 139 could not
// be reached or its session service refused, the diagnosis names both
// ports.
func classifyFallback(host, account string, local bool, errs []error) *AuthError {
	first, last := errs[0], errs[len(errs)-1]
	var se *smbconn.Error
	reached139 := !errors.Is(last, smbconn.ErrUnreachable) && !errors.Is(last, smbconn.ErrNBTSession) &&
		(!errors.As(last, &se) || se.Op != "netbios session")
	if reached139 {
		return classifySetup(host, account, local, last)
	}
	ae := classifySetup(host, account, local, first)
	ae.Err = fmt.Errorf("%w; then over NetBIOS (TCP 139): %w", first, last)
	if ae.Kind != ErrUnreachable {
		return ae
	}
	if errors.Is(last, smbconn.ErrUnreachable) {
		ae.Diagnosis = diagSMBPortsClosed(host, errors.Is(first, smbconn.ErrRefused), last)
	} else {
		ae.Diagnosis = diagNetBIOSSessionRefused(host, errors.Is(first, smbconn.ErrRefused), last)
	}
	return ae
}

func classifyStatus(ae *AuthError, st smbconn.NTStatus, account string, info smbconn.Info) {
	ae.Retryable = true
	switch st {
	case smbconn.StatusLogonFailure, smbconn.StatusWrongPassword, smbconn.StatusNoSuchUser, smbconn.StatusAccessDenied:
		ae.Kind = ErrLogonFailure
		ae.Diagnosis = diagLogonFailure(account, info.HasChallenge && !info.Challenge.HasTargetInfo)
	case smbconn.StatusAccountDisabled:
		ae.Kind, ae.Diagnosis = ErrAccountRestricted, diagAccount(diag.AccountDisabled, account, "the account is disabled")
	case smbconn.StatusAccountLockedOut:
		ae.Kind, ae.Diagnosis = ErrAccountRestricted, diagAccount(diag.AccountLocked, account, "the account is locked out after too many failed logons")
	case smbconn.StatusAccountExpired:
		ae.Kind, ae.Diagnosis = ErrAccountRestricted, diagAccount(diag.AccountExpired, account, "the account has expired")
	case smbconn.StatusPasswordExpired, smbconn.StatusPasswordMustChange:
		ae.Kind, ae.Diagnosis = ErrAccountRestricted, diagAccount(diag.PasswordExpired, account, "the password has expired or must be changed at next logon")
	case smbconn.StatusInvalidLogonHours, smbconn.StatusInvalidWorkstation, smbconn.StatusAccountRestriction:
		ae.Kind, ae.Diagnosis = ErrAccountRestricted, diagAccount(diag.LogonRestricted, account, "an account restriction applies (logon hours, allowed workstations, or a blank password over the network)")
	case smbconn.StatusLogonTypeNotGranted:
		ae.Kind, ae.Diagnosis = ErrAccountRestricted, diagNetworkLogonDenied(account)
	case smbconn.StatusNTLMBlocked:
		ae.Kind, ae.Diagnosis, ae.Retryable = ErrNTLMBlocked, diagNTLMBlocked(), false
	default:
		ae.Kind, ae.Retryable = ErrSMBProtocol, false
		ae.Diagnosis = diag.Diagnosis{Code: diag.ServerStatus, Summary: "The computer refused the SMB logon with " + diag.NTStatusText(uint32(st)) + ".", Fix: "Act on what the status says, or see the error details."}
	}
}

// ShouldPrompt reports whether asking the technician for other credentials
// could help after err. The rule:
//
//   - yes for a logon failure, a restricted account (locked, disabled,
//     expired, no network logon right) and "not administrator": another
//     account can succeed;
//   - for a guest session: yes for a domain account, or when the computer
//     is joined to a domain (a domain account is not subject to the
//     "Guest only" model), no for a local account on a workgroup computer,
//     where every local account becomes Guest;
//   - no for everything the computer's configuration or the network
//     causes (unreachable, NTLM blocked, signing, encryption, protocol,
//     no ADMIN$), and no for a canceled context or prompt.
//
// It returns false for errors that are not *AuthError.
func ShouldPrompt(err error) bool {
	var ae *AuthError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Retryable
}
