package krb

import (
	"errors"
	"fmt"
	"time"
)

// The diagnoses. An *Error matches exactly one of them with errors.Is
// (ErrAccount matches the three account states as well); other failures
// are returned as they are (a bad credential, a context error).
var (
	// ErrBadInput means a Credential, SPN or Config is unusable before
	// anything is sent: no user or realm, no secret, an unreadable keytab
	// or ccache.
	ErrBadInput = errors.New("krb: invalid input")
	// ErrNeedsDNSName means a target was given by IP address or a short
	// name: Kerberos names services by the computer's DNS name.
	ErrNeedsDNSName = errors.New("krb: Kerberos needs the computer's DNS name, not an IP address")
	// ErrNoKDC means no KDC could be located for the realm (no krb5.conf
	// entry, no DNS SRV record, no DC given).
	ErrNoKDC = errors.New("krb: no KDC found for the realm")
	// ErrKDCUnreachable means every KDC located failed to answer.
	ErrKDCUnreachable = errors.New("krb: KDC unreachable")
	// ErrClockSkew means the KDC refused our time (KRB_AP_ERR_SKEW);
	// Error.Skew says by how much the clocks differ.
	ErrClockSkew = errors.New("krb: clock skew too great")
	// ErrPrincipalUnknown means the KDC does not know the user
	// (KDC_ERR_C_PRINCIPAL_UNKNOWN).
	ErrPrincipalUnknown = errors.New("krb: unknown user principal")
	// ErrSPNUnknown means the KDC knows no account with the service
	// principal name (KDC_ERR_S_PRINCIPAL_UNKNOWN): an alias or a stale
	// DNS name, or a computer that is not in the domain.
	ErrSPNUnknown = errors.New("krb: unknown service principal name")
	// ErrWrongPassword means pre-authentication failed
	// (KDC_ERR_PREAUTH_FAILED), or the KDC's reply could not be decrypted
	// with our key: the password, hash or key is wrong.
	ErrWrongPassword = errors.New("krb: wrong password (pre-authentication failed)")
	// ErrAccount matches ErrAccountLocked, ErrAccountDisabled and
	// ErrAccountExpired, and a revoked client whose reason the KDC did not
	// give.
	ErrAccount = errors.New("krb: account unusable")
	// ErrAccountLocked means the account is locked out.
	ErrAccountLocked = errors.New("krb: account locked out")
	// ErrAccountDisabled means the account is disabled.
	ErrAccountDisabled = errors.New("krb: account disabled")
	// ErrAccountExpired means the account, or its password, has expired.
	ErrAccountExpired = errors.New("krb: account or password expired")
	// ErrNoCommonEtype means the KDC supports none of the encryption types
	// offered (KDC_ERR_ETYPE_NOSUPP).
	ErrNoCommonEtype = errors.New("krb: no common encryption type")
	// ErrMutualAuth means the server did not prove that it holds the
	// service's key: no AP-REP, or one that does not decrypt. The host
	// that answered is not the computer the ticket was for.
	ErrMutualAuth = errors.New("krb: server failed mutual authentication")
	// ErrKDC is any other KRB-ERROR; Error.Code has it.
	ErrKDC = errors.New("krb: KDC error")
)

// NT status codes that a KDC puts in a KRB-ERROR's e-data (MS-KILE
// 2.2.1 KERB-EXT-ERROR) to say why it revoked a client.
const (
	statusAccountLockedOut   = 0xC0000234
	statusAccountDisabled    = 0xC0000072
	statusAccountExpired     = 0xC0000193
	statusPasswordExpired    = 0xC0000071
	statusPasswordMustChange = 0xC0000224
	statusInvalidLogonHours  = 0xC000006F
)

// Error is a Kerberos failure with its diagnosis. It never holds a secret.
type Error struct {
	Op        string        // "AS exchange", "TGS exchange", "locate KDC", ...
	Principal string        // the user, user@REALM
	SPN       string        // the service, for TGS failures
	KDC       string        // the KDC that answered (or was tried last)
	Code      int32         // the KRB-ERROR code, 0 when none was received
	Status    uint32        // the NT status from the KRB-ERROR's e-data, 0 when none
	Skew      time.Duration // for ErrClockSkew: the KDC's clock minus ours
	Kind      error         // one of the Err* diagnoses
	Err       error         // the underlying error, if any
}

func (e *Error) Error() string {
	s := "krb: " + e.Op
	if e.Principal != "" {
		s += " for " + e.Principal
	}
	if e.SPN != "" {
		s += " to " + e.SPN
	}
	if e.KDC != "" {
		s += " (KDC " + e.KDC + ")"
	}
	s += ": " + e.summary()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) summary() string {
	switch e.Kind {
	case ErrClockSkew:
		dir := "ahead of"
		d := e.Skew
		if d < 0 {
			dir, d = "behind", -d
		}
		return fmt.Sprintf("clock skew too great: the KDC's clock is %v %s this computer's (Kerberos allows 5m); synchronise the clocks (w32tm /resync, NTP)", d.Round(time.Second), dir)
	case ErrKDCUnreachable:
		return "KDC unreachable (TCP 88); check the KDC address (-kdc), DNS SRV _kerberos._tcp.REALM, or a firewall"
	case ErrSPNUnknown:
		return "the KDC knows no computer with this name (an alias or a stale DNS name?); use the computer's own DNS name"
	case ErrWrongPassword:
		return "wrong password (pre-authentication failed); further attempts count towards the account's lockout"
	case ErrAccountLocked:
		return "the account is locked out; wait for the lockout to end or ask a domain admin to unlock it"
	case ErrAccountDisabled:
		return "the account is disabled"
	case ErrAccountExpired:
		return "the account or its password has expired"
	case ErrAccount:
		return "the KDC revoked the account without saying why: locked out, disabled or expired (a Samba DC says nothing for a lockout); check the account in Active Directory"
	case ErrNTLMBlocked:
		return "the computer refuses NTLM logons (STATUS_NTLM_BLOCKED); use Kerberos (-auth kerberos) with the computer's DNS name and a domain account"
	case ErrNoCommonEtype:
		return "no common encryption type with the KDC (AES or RC4 disabled on one side?)"
	}
	if e.Kind != nil {
		s := e.Kind.Error()
		if len(s) > 5 && s[:5] == "krb: " {
			s = s[5:]
		}
		if e.Code != 0 {
			s += fmt.Sprintf(" (KRB-ERROR %d", e.Code)
			if e.Status != 0 {
				s += fmt.Sprintf(", NT status 0x%08X", e.Status)
			}
			s += ")"
		}
		return s
	}
	return "failed"
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the diagnosis; ErrAccount also matches its three states.
func (e *Error) Is(target error) bool {
	if target == e.Kind {
		return true
	}
	if target == ErrAccount {
		return e.Kind == ErrAccountLocked || e.Kind == ErrAccountDisabled || e.Kind == ErrAccountExpired
	}
	return false
}
