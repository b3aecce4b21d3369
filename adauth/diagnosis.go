package adauth

import (
	"errors"
	"strconv"

	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// Diagnosis explains a failed authentication in terms a technician can act
// on. Code is stable and machine-readable (consoles may map it to their own
// help pages); Summary says what happened and Fix what to change, both in
// plain English. A Diagnosis never contains a password or hash.
//
// The zero value means "no diagnosis".
type Diagnosis struct {
	Code    string `json:"code"`
	Summary string `json:"summary"`
	Fix     string `json:"fix,omitempty"`
}

// IsZero reports whether d is empty.
func (d Diagnosis) IsZero() bool { return d.Code == "" }

// String returns the summary followed by the fix.
func (d Diagnosis) String() string {
	if d.Fix == "" {
		return d.Summary
	}
	return d.Summary + " Fix: " + d.Fix
}

// Diagnosis codes. They are part of the API: consoles may switch on them.
const (
	DiagFirewallRefused    = "firewall-445-refused"     // TCP 445 answered with a reset
	DiagFirewallFiltered   = "firewall-445-filtered"    // TCP 445 did not answer (timeout)
	DiagNoRoute            = "no-route"                 // no route / ARP failure
	DiagNameNotResolved    = "name-not-resolved"        // the host name did not resolve
	DiagLogonFailure       = "logon-failure"            // wrong user or password
	DiagNTLMv1Only         = "ntlmv1-only"              // logon failed and the peer looks NTLMv1-only
	DiagAccountDisabled    = "account-disabled"         // account disabled
	DiagAccountLocked      = "account-locked"           // account locked out
	DiagAccountExpired     = "account-expired"          // account expired
	DiagPasswordExpired    = "password-expired"         // password expired or must change
	DiagLogonRestricted    = "logon-restricted"         // logon hours, workstation or account restriction
	DiagNetworkLogonDenied = "network-logon-denied"     // the "access this computer from the network" right
	DiagNTLMBlocked        = "ntlm-blocked"             // STATUS_NTLM_BLOCKED
	DiagGuestOnly          = "guest-only"               // a local account was mapped to Guest
	DiagGuestMapped        = "guest-mapped"             // a domain account was mapped to Guest
	DiagNotAdmin           = "not-admin"                // the account is not an administrator
	DiagUACRemote          = "uac-remote-restrictions"  // a local administrator filtered by UAC
	DiagAdminShareMissing  = "admin-share-missing"      // ADMIN$ does not exist
	DiagSCMUnavailable     = "scm-unavailable"          // the SCM pipe could not be used
	DiagSigningMismatch    = "signing-mismatch"         // signing could not be agreed or verified
	DiagEncryptionMissing  = "encryption-unsupported"   // encryption required, server cannot
	DiagProtocol           = "smb-protocol"             // not an SMB2/3 server, or a broken answer
	DiagConnectionLost     = "connection-lost"          // the server closed the connection
	DiagCancelled          = "cancelled"                // the caller's context ended
	DiagPromptCancelled    = "prompt-cancelled"         // the technician cancelled the prompt
	DiagOther              = "other"                    // anything else; see the error
	DiagTimeout            = "timeout"                  // the server stopped answering
	DiagServerStatus       = "server-status"            // an NT status not listed above
	DiagNoCredentials      = "no-credentials"           // no credentials to try
	DiagAdminShareReadOnly = "admin-share-write-denied" // ADMIN$ opens but cannot be written
	DiagIdentityMismatch   = "identity-mismatch"        // the NTLM challenge names another computer; nothing was sent
	DiagDowngrade          = "smb-downgrade"            // dialect below the minimum, or negotiation validation failed
)

func diagFirewallRefused(host string) Diagnosis {
	return Diagnosis{DiagFirewallRefused,
		host + " refused the connection on TCP port 445 (SMB): the port is closed or a firewall rejects it.",
		`On the computer, allow "File and Printer Sharing" (SMB-In, TCP 445) in Windows Defender Firewall for this network profile, and check that the "Server" (LanmanServer) service is running.`}
}

func diagFirewallFiltered(host string) Diagnosis {
	return Diagnosis{DiagFirewallFiltered,
		host + " did not answer on TCP port 445 (SMB): a firewall drops the traffic, or the computer is off or asleep.",
		`Check that the computer is on and awake, then allow "File and Printer Sharing" (SMB-In, TCP 445) in its firewall for this network profile (Private or Domain; on a Public profile Windows blocks it).`}
}

func diagNoRoute(host string) Diagnosis {
	return Diagnosis{DiagNoRoute,
		"There is no network route to " + host + ": it is not on this network, or it does not answer ARP.",
		"Check the address, that the computer is on and connected, and that this console is on the same network or a routed one."}
}

func diagNotResolved(host string) Diagnosis {
	return Diagnosis{DiagNameNotResolved,
		"The name " + host + " could not be resolved to an address.",
		"Use the computer's IP address, or check DNS / NetBIOS name resolution."}
}

func diagIdentityMismatch(host string, err error) Diagnosis {
	claimed := "no computer name"
	var ie *smbconn.IdentityError
	expected := ""
	if errors.As(err, &ie) {
		expected = ie.Expected
		if ie.Unreadable {
			claimed = "an unreadable NTLM challenge"
		} else {
			claimed = ie.Claimed()
		}
	}
	return Diagnosis{DiagIdentityMismatch,
		"The computer at " + host + " answered as " + claimed + ", not as " + strconv.Quote(expected) + ": another host may answer for this name (a spoofed NetBIOS or DNS answer, or a stale record). No credentials were sent to it.",
		"Check which computer owns " + expected + " (DNS, the directory, its console), fix the stale or rogue name record, or connect by the computer's IP address after checking it."}
}

func diagLogonFailure(account string, ntlmv1Hint bool) Diagnosis {
	if ntlmv1Hint {
		return Diagnosis{DiagNTLMv1Only,
			"The computer rejected the logon of " + account + ", and its NTLM challenge carries no target information, which suggests it accepts only LM or NTLMv1.",
			`Check the user name and password. If they are right, set "Network security: LAN Manager authentication level" on the computer to accept NTLMv2 ("Send NTLMv2 response only" or higher); this console speaks NTLMv2 only.`}
	}
	return Diagnosis{DiagLogonFailure,
		"The computer rejected the logon of " + account + ": unknown user or wrong password.",
		`Check the user name, the domain (use .\user or COMPUTER\user for a local account) and the password. If they are right, check that the computer's "LAN Manager authentication level" accepts NTLMv2.`}
}

func diagAccount(code, account, what string) Diagnosis {
	return Diagnosis{code,
		"The computer refused the logon of " + account + ": " + what + ".",
		"Use another administrator account, or have the account fixed (unlocked, enabled, password changed) and try again."}
}

func diagNetworkLogonDenied(account string) Diagnosis {
	return Diagnosis{DiagNetworkLogonDenied,
		account + ` may not log on over the network on this computer.`,
		`Grant the account "Access this computer from the network" and remove it from "Deny access to this computer from the network" (Local Security Policy, User Rights Assignment), or use another account.`}
}

func diagNTLMBlocked() Diagnosis {
	return Diagnosis{DiagNTLMBlocked,
		"The computer refuses NTLM logons (STATUS_NTLM_BLOCKED).",
		`Allow incoming NTLM on the computer ("Network security: Restrict NTLM: Incoming NTLM traffic" = Allow all, or add an exception for this console). Kerberos is not supported yet.`}
}

func diagGuest(account string, local, joined bool) Diagnosis {
	if local {
		return Diagnosis{DiagGuestOnly,
			"The computer logged " + account + " on as Guest: it uses the \"Guest only\" sharing model for local accounts, so no local account can act as administrator over the network.",
			`Set "Network access: Sharing and security model for local accounts" to "Classic - local users authenticate as themselves" (Local Security Policy, or ForceGuest=0 under HKLM\SYSTEM\CurrentControlSet\Control\Lsa)` + joinedHint(joined) + "."}
	}
	return Diagnosis{DiagGuestMapped,
		"The computer logged " + account + " on as Guest: it does not know the account (wrong domain, or no trust) and maps unknown users to Guest.",
		`Check the domain part of the account. Use an account the computer knows, or disable guest mapping ("map to guest" on Samba; the Guest account and "Guest only" model on Windows).`}
}

func joinedHint(joined bool) string {
	if joined {
		return ", or use a domain administrator account, which this setting does not affect"
	}
	return ""
}

func diagNotAdmin(account string, local, builtin bool) Diagnosis {
	if local && builtin {
		return Diagnosis{DiagUACRemote,
			account + " is the computer's built-in Administrator (RID 500) but is not an administrator over the network: UAC remote restrictions apply to it because \"Admin Approval Mode for the Built-in Administrator account\" (FilterAdministratorToken) is enabled.",
			`Disable that policy, or set HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\LocalAccountTokenFilterPolicy (DWORD) to 1, or use a domain administrator account.`}
	}
	if local {
		return Diagnosis{DiagUACRemote,
			account + " logged on but is not an administrator over the network. For a local account this is usually UAC remote restrictions: only the built-in Administrator keeps its rights remotely.",
			`Add the account to the local Administrators group, and set HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\LocalAccountTokenFilterPolicy (DWORD) to 1, or use the built-in Administrator or a domain administrator account.`}
	}
	return Diagnosis{DiagNotAdmin,
		account + " logged on but is not an administrator on this computer.",
		"Use an account that is in the computer's local Administrators group (for example a domain administrator), or add this account to it."}
}

func diagAdminShareMissing() Diagnosis {
	return Diagnosis{DiagAdminShareMissing,
		"The computer has no ADMIN$ share.",
		`Re-enable the administrative shares (remove AutoShareWks=0 / AutoShareServer=0 under HKLM\SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters and restart the Server service).`}
}

func diagSCMUnavailable() Diagnosis {
	return Diagnosis{DiagSCMUnavailable,
		"The Service Control Manager could not be reached over the \\pipe\\svcctl named pipe.",
		"Check that the computer allows remote service management (the firewall rule \"Remote Service Management\" and the RPC services)."}
}

func diagSigning() Diagnosis {
	return Diagnosis{DiagSigningMismatch,
		"SMB signing could not be agreed or a signature did not verify.",
		"Make sure the computer supports SMB signing (every Windows version since 2000 does). A device in the path that alters SMB traffic also causes this."}
}

func diagEncryption() Diagnosis {
	return Diagnosis{DiagEncryptionMissing,
		"Encryption is required by this console, but the computer cannot encrypt SMB (it needs SMB 3, Windows 8 / Server 2012 or later).",
		"Allow unencrypted, signed sessions in the console's settings, or update the computer."}
}

func diagDowngrade(info smbconn.Info) Diagnosis {
	if info.Dialect != 0 && !info.HasChallenge {
		return Diagnosis{DiagDowngrade,
			"The computer offered only SMB " + info.Dialect.String() + ", below the minimum dialect this console accepts; no credentials were sent.",
			"Enable SMB 3 on the computer (Windows 8 / Server 2012 or later), or check for a device in the path that strips SMB dialects."}
	}
	return Diagnosis{DiagDowngrade,
		"The SMB negotiation with the computer failed validation: something in the network path changed it (stripped dialects, signing or encryption).",
		"Look for a device or host intercepting SMB between this console and the computer; do not use this path to deploy."}
}

func diagProtocolPanic(host string) Diagnosis {
	return Diagnosis{DiagProtocol,
		host + " sent an answer that the SMB or RPC client could not handle: the computer is broken or hostile.",
		"Check the computer; do not deploy to it until it answers normally."}
}

func diagProtocol() Diagnosis {
	return Diagnosis{DiagProtocol,
		"The computer did not answer as an SMB2/3 server: it may speak only SMB1 (Windows XP / Server 2003), or something other than SMB listens on port 445.",
		"Enable SMB2/3 on the computer; SMB1 is not supported."}
}

func diagConnLost() Diagnosis {
	return Diagnosis{DiagConnectionLost,
		"The computer closed the SMB connection.",
		"Try again; if it persists, check that the computer accepts SMB2/3 connections from this console (security software may reset them)."}
}
