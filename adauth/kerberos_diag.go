package adauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/krb"
)

// ErrKerberos is the Kind of an *AuthError for a Kerberos failure that is
// not about the account's secret or state: no DNS name, no KDC, clock
// skew, an unknown service name, no common encryption type, a server that
// failed mutual authentication. Other credentials won't help. (A wrong
// password is ErrLogonFailure and a locked, disabled or expired account
// ErrAccountRestricted, as with NTLM.)
var ErrKerberos = errors.New("adauth: Kerberos failed")

// krbAuthError turns a failure of the Kerberos path (internal/krb's
// diagnoses, or an SMB session setup that the initiator refused) into an
// *AuthError, or returns nil when err carries no Kerberos diagnosis.
func krbAuthError(host, account string, err error) *AuthError {
	var ke *krb.Error
	if !errors.As(err, &ke) && !errors.Is(err, krb.ErrNeedsDNSName) && !errors.Is(err, krb.ErrBadInput) {
		return nil
	}
	ae := &AuthError{Addr: host, Account: account, Step: StepLogon, Kind: ErrKerberos, Err: err}
	d := func(code diag.Code, summary, fix string) diag.Diagnosis {
		return diag.Diagnosis{Code: code, Summary: summary, Fix: fix}
	}
	kdc := ""
	if ke != nil && ke.KDC != "" {
		kdc = " (" + ke.KDC + ")"
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, krb.ErrKDCUnreachable):
		ae.Kind = ErrCanceled
		ae.Diagnosis = d(diag.Canceled, "The authentication was canceled or ran out of time.", "")
	case errors.Is(err, krb.ErrNeedsDNSName):
		ae.Diagnosis = d(diag.KerberosNeedsDNSName, "Kerberos needs the computer's DNS name, but "+host+" is known by its address only.",
			"Connect to the computer's DNS name (for example ws01.corp.example), or allow NTLM by address with -auth auto or -auth ntlm.")
	case errors.Is(err, krb.ErrNotDomainAccount):
		ae.Diagnosis = d(diag.KerberosNeedsDomainAccount, "Kerberos needs a domain account, and "+account+" is a local account (or the computer is in a workgroup).",
			`Use a domain account (DOMAIN\user or user@REALM), or -auth auto or -auth ntlm for a local account.`)
	case errors.Is(err, krb.ErrNTLMBlocked):
		ae.Kind = ErrNTLMBlocked
		ae.Diagnosis = diagNTLMBlocked()
	case errors.Is(err, krb.ErrNoKDC):
		ae.Diagnosis = d(diag.KDCNotFound, "No Kerberos KDC was found for the account's domain (no krb5.conf entry, no DNS SRV record _kerberos._tcp, no DC given).",
			"Give the KDC's address with -kdc, or use a DNS server that serves the domain's SRV records.")
	case errors.Is(err, krb.ErrKDCUnreachable):
		ae.Diagnosis = d(diag.KDCUnreachable, "No Kerberos KDC answered on TCP 88"+kdc+".",
			"Check the KDC address (-kdc), the DNS SRV records _kerberos._tcp.REALM, and firewalls between this console and the domain controllers.")
	case errors.Is(err, krb.ErrClockSkew):
		ae.Diagnosis = d(diag.ClockSkew, skewText(ke), "Synchronise this console's clock with the domain (NTP, w32tm /resync); Kerberos allows 5 minutes.")
	case errors.Is(err, krb.ErrPrincipalUnknown):
		ae.Kind, ae.Retryable = ErrLogonFailure, true
		ae.Diagnosis = d(diag.KerberosUnknownUser, "The domain's KDC does not know the user "+account+".", `Check the user name and the domain (DOMAIN\user or user@REALM).`)
	case errors.Is(err, krb.ErrSPNUnknown):
		spn := ""
		if ke != nil {
			spn = " (" + ke.SPN + ")"
		}
		ae.Diagnosis = d(diag.KerberosUnknownSPN, "The domain knows no computer with the DNS name used"+spn+": an alias, a stale DNS name, or a computer outside the domain.",
			"Use the computer's own DNS name as the directory lists it, or NTLM by address for a computer outside the domain.")
	case errors.Is(err, krb.ErrWrongPassword):
		ae.Kind, ae.Retryable = ErrLogonFailure, true
		ae.Diagnosis = d(diag.KerberosWrongPassword, "The domain refused the password of "+account+" (Kerberos pre-authentication failed). It is not tried on other computers.",
			"Check the password; each further wrong try counts towards the account's lockout.")
	case errors.Is(err, krb.ErrAccountLocked):
		ae.Kind, ae.Retryable = ErrAccountRestricted, true
		ae.Diagnosis = diagAccount(diag.AccountLocked, account, "the account is locked out (Kerberos)")
	case errors.Is(err, krb.ErrAccountDisabled):
		ae.Kind, ae.Retryable = ErrAccountRestricted, true
		ae.Diagnosis = diagAccount(diag.AccountDisabled, account, "the account is disabled (Kerberos)")
	case errors.Is(err, krb.ErrAccountExpired):
		ae.Kind, ae.Retryable = ErrAccountRestricted, true
		ae.Diagnosis = diagAccount(diag.AccountExpired, account, "the account or its password has expired (Kerberos)")
	case errors.Is(err, krb.ErrAccount):
		ae.Kind, ae.Retryable = ErrAccountRestricted, true
		ae.Diagnosis = d(diag.KerberosAccountRevoked, "The domain's KDC revoked "+account+" without saying why: locked out, disabled or expired.",
			"Check the account in Active Directory, or use another account.")
	case errors.Is(err, krb.ErrNoCommonEtype):
		ae.Diagnosis = d(diag.KerberosNoCommonEtype, "The KDC supports none of the encryption types offered (AES or RC4 disabled on one side).",
			"Enable AES for the account and the domain, or give the account's password or AES key instead of an NT hash.")
	case errors.Is(err, krb.ErrMutualAuth):
		ae.Diagnosis = d(diag.KerberosMutualAuth, "The computer at "+host+" could not prove that it owns the name asked for (no valid Kerberos AP-REP): it is another computer, or its machine account is out of date.",
			"Check which computer owns the name (DNS, the directory) and remove a stale or rogue record; rejoin the computer if its machine password is out of date.")
	case errors.Is(err, krb.ErrBadInput):
		ae.Kind = ErrBadCredentials
		ae.Diagnosis = d(diag.KerberosError, "The Kerberos credentials cannot be used: "+err.Error()+".", "Check the account, the ccache (run kinit again) or the keytab.")
	default:
		ae.Diagnosis = d(diag.KerberosError, "Kerberos failed"+kdc+".", "See the error details for the KDC's error.")
	}
	return ae
}

// skewText says by how much the KDC's clock differs from ours.
func skewText(ke *krb.Error) string {
	if ke == nil || ke.Skew == 0 {
		return "The KDC refused this console's time: the clocks differ by more than 5 minutes."
	}
	dir, s := "ahead of", ke.Skew
	if s < 0 {
		dir, s = "behind", -s
	}
	return fmt.Sprintf("The KDC's clock is %v %s this console's; Kerberos allows 5 minutes.", s.Round(time.Second), dir)
}
