package krb

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Policy says which authentication a connection may use (connect -auth).
// The zero value is PolicyAuto.
type Policy string

// The policies.
const (
	// PolicyAuto uses Kerberos for a domain account when the target's DNS
	// name is known, and NTLM only where Kerberos cannot work (an IP-only
	// target, a workgroup computer, a local account) and NTLM is not
	// known to be blocked.
	PolicyAuto Policy = "auto"
	// PolicyKerberos uses Kerberos only; where it cannot work the
	// connection fails with a diagnosis.
	PolicyKerberos Policy = "kerberos"
	// PolicyNTLM uses NTLM only, as the SDK did before Kerberos.
	PolicyNTLM Policy = "ntlm"
)

// ParsePolicy parses "auto", "kerberos" or "ntlm" (case-insensitive);
// empty means auto. Anything else fails with ErrBadInput.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return PolicyAuto, nil
	case PolicyAuto, PolicyKerberos, PolicyNTLM:
		return p, nil
	}
	return "", fmt.Errorf("%w: authentication policy %q (auto, kerberos or ntlm)", ErrBadInput, s)
}

// Method is the authentication a connection uses; the session record
// reports it.
type Method string

// The methods.
const (
	MethodKerberos Method = "kerberos"
	MethodNTLM     Method = "ntlm"
)

// Choice is what Choose decides on.
type Choice struct {
	Policy Policy
	// Account is the user as typed: DOMAIN\user, user@realm, .\user or
	// user.
	Account string
	// DNSName is the target's DNS name when known (from discovery or
	// DNS); empty when only an address is known.
	DNSName string
	// NetBIOSName is the target's computer name when known: an account
	// written as NAME\user is local to it.
	NetBIOSName string
	// Workgroup reports a target that is not in a domain.
	Workgroup bool
	// NTLMBlocked reports that the target refused NTLM before
	// (STATUS_NTLM_BLOCKED).
	NTLMBlocked bool
}

// ErrNotDomainAccount means Kerberos was required for a local or
// workgroup account, which only NTLM can log on.
var ErrNotDomainAccount = errors.New("krb: Kerberos needs a domain account (DOMAIN\\user or user@REALM)")

// Choose applies the policy (issue 15 §2) and returns the method to use,
// or a diagnosis when none can work: ErrNeedsDNSName (Kerberos with only
// an address), ErrNotDomainAccount (Kerberos with a local account or on a
// workgroup computer), ErrNTLMBlocked (NTLM is all that can work, and the
// target refuses it), ErrBadInput (an unknown policy). It makes no
// network call.
func Choose(c Choice) (Method, error) {
	p, err := ParsePolicy(string(c.Policy))
	if err != nil {
		return "", err
	}
	domain := isDomainAccount(c.Account, c.NetBIOSName) && !c.Workgroup
	name := c.DNSName
	if name != "" {
		if _, err := SPN(Host, name); err != nil {
			name = "" // an address or a short name is no DNS name
		}
	}
	switch p {
	case PolicyNTLM:
		if c.NTLMBlocked {
			return "", &Error{Op: "choose authentication", Kind: ErrNTLMBlocked}
		}
		return MethodNTLM, nil
	case PolicyKerberos:
		if !domain {
			return "", &Error{Op: "choose authentication", Principal: c.Account, Kind: ErrNotDomainAccount}
		}
		if name == "" {
			return "", &Error{Op: "choose authentication", Kind: ErrNeedsDNSName, Err: errors.New("the target is known by its address only; give its DNS name")}
		}
		return MethodKerberos, nil
	}
	if domain && name != "" {
		return MethodKerberos, nil
	}
	if c.NTLMBlocked {
		why := ErrNeedsDNSName
		if !domain {
			why = ErrNotDomainAccount
		}
		return "", &Error{Op: "choose authentication", Kind: ErrNTLMBlocked, Err: why}
	}
	return MethodNTLM, nil
}

// isDomainAccount reports whether account names a domain: user@realm, or
// DOMAIN\user with a domain that is neither "." nor the target's own
// computer name.
func isDomainAccount(account, netbiosName string) bool {
	if d, _, ok := strings.Cut(account, `\`); ok {
		if d == "" || d == "." || (netbiosName != "" && strings.EqualFold(d, netbiosName)) {
			return false
		}
		if _, err := netip.ParseAddr(d); err == nil {
			return false
		}
		return true
	}
	_, r, ok := strings.Cut(account, "@")
	return ok && r != ""
}
