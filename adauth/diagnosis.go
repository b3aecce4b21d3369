package adauth

import (
	"context"
	"errors"
	"os"
	"strconv"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

func diagFirewallRefused(host string) diag.Diagnosis {
	return diag.Diagnosis{Code: diag.FirewallRefused,
		Summary: host + " refused the connection on TCP port 445 (SMB): the port is closed or a firewall rejects it.",
		Fix:     `On the computer, allow "File and Printer Sharing" (SMB-In, TCP 445) in Windows Defender Firewall for this network profile, and check that the "Server" (LanmanServer) service is running.`}
}

func diagFirewallFiltered(host string) diag.Diagnosis {
	return diag.Diagnosis{Code: diag.FirewallFiltered,
		Summary: host + " did not answer on TCP port 445 (SMB): a firewall drops the traffic, or the computer is off or asleep.",
		Fix:     `Check that the computer is on and awake, then allow "File and Printer Sharing" (SMB-In, TCP 445) in its firewall for this network profile (Private or Domain; on a Public profile Windows blocks it).`}
}

// diagSMBPortsClosed explains a computer that could not be reached on
// TCP 445 (refused when refused445, else filtered) nor on TCP 139 (err139,
// a *smbconn.DialError). The code stays the one of port 445.
func diagSMBPortsClosed(host string, refused445 bool, err139 error) diag.Diagnosis {
	how139 := "refused the connection"
	switch {
	case errors.Is(err139, smbconn.ErrFiltered):
		how139 = "did not answer"
	case errors.Is(err139, smbconn.ErrNoRoute):
		how139 = "had no route"
	}
	d := diagFirewallRefused(host)
	how445 := "refused the connection on"
	if !refused445 {
		d = diagFirewallFiltered(host)
		how445 = "did not answer on"
	}
	d.Summary = host + " " + how445 + " TCP port 445 (SMB), and " + how139 + " on TCP port 139 (SMB over NetBIOS) too: the ports are closed or a firewall blocks them, or the computer is off."
	d.Fix = `On the computer, allow "File and Printer Sharing" (SMB-In, TCP 445, or NB-Session-In, TCP 139) in Windows Defender Firewall for this network profile (Private or Domain; on a Public profile Windows blocks it), and check that the "Server" (LanmanServer) service is running.`
	return d
}

// diagNetBIOSSessionRefused explains a computer whose TCP 445 could not
// be reached and whose NetBIOS session service on TCP 139 answered but
// did not open a session (err139: an *smbconn.NBTSessionError or a
// malformed answer).
func diagNetBIOSSessionRefused(host string, refused445 bool, err139 error) diag.Diagnosis {
	how445 := "refused the connection on"
	if !refused445 {
		how445 = "did not answer on"
	}
	why := "answered with something that is not a NetBIOS session response"
	var ne *smbconn.NBTSessionError
	if errors.Is(err139, context.DeadlineExceeded) || errors.Is(err139, os.ErrDeadlineExceeded) {
		why = "accepted the connection but did not answer the NetBIOS session request in time"
	}
	if errors.As(err139, &ne) {
		why = "refused the NetBIOS session (" + ne.Code.String() + ")"
		if ne.Retarget.IsValid() {
			why = "redirected the NetBIOS session to " + ne.Retarget.String() + ", which this console does not follow"
		}
	}
	return diag.Diagnosis{Code: diag.NetBIOSSessionRefused,
		Summary: host + " " + how445 + " TCP port 445 (SMB), and its TCP port 139 " + why + ".",
		Fix:     `Allow "File and Printer Sharing" (SMB-In, TCP 445) in the computer's firewall; if only TCP 139 may be open, check that "NetBIOS over TCP/IP" is enabled on its network adapter and that the "Server" (LanmanServer) service is running.`}
}

func diagNoRoute(host string) diag.Diagnosis {
	return diag.Diagnosis{Code: diag.NoRoute,
		Summary: "There is no network route to " + host + ": it is not on this network, or it does not answer ARP.",
		Fix:     "Check the address, that the computer is on and connected, and that this console is on the same network or a routed one."}
}

func diagNotResolved(host string) diag.Diagnosis {
	return diag.Diagnosis{Code: diag.NameNotResolved,
		Summary: "The name " + host + " could not be resolved to an address.",
		Fix:     "Use the computer's IP address, or check DNS / NetBIOS name resolution."}
}

func diagIdentityMismatch(host string, err error) diag.Diagnosis {
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
	return diag.Diagnosis{Code: diag.IdentityMismatch,
		Summary: "The computer at " + host + " answered as " + claimed + ", not as " + strconv.Quote(expected) + ": another host may answer for this name (a spoofed NetBIOS or DNS answer, or a stale record). No credentials were sent to it.",
		Fix:     "Check which computer owns " + expected + " (DNS, the directory, its console), fix the stale or rogue name record, or connect by the computer's IP address after checking it."}
}

func diagLogonFailure(account string, ntlmv1Hint bool) diag.Diagnosis {
	if ntlmv1Hint {
		return diag.Diagnosis{Code: diag.NTLMv1Only,
			Summary: "The computer rejected the logon of " + account + ", and its NTLM challenge carries no target information, which suggests it accepts only LM or NTLMv1.",
			Fix:     `Check the user name and password. If they are right, set "Network security: LAN Manager authentication level" on the computer to accept NTLMv2 ("Send NTLMv2 response only" or higher); this console speaks NTLMv2 only.`}
	}
	return diag.Diagnosis{Code: diag.LogonFailure,
		Summary: "The computer rejected the logon of " + account + ": unknown user or wrong password.",
		Fix:     `Check the user name, the domain (use .\user or COMPUTER\user for a local account) and the password. If they are right, check that the computer's "LAN Manager authentication level" accepts NTLMv2.`}
}

func diagAccount(code diag.Code, account, what string) diag.Diagnosis {
	return diag.Diagnosis{Code: code,
		Summary: "The computer refused the logon of " + account + ": " + what + ".",
		Fix:     "Use another administrator account, or have the account fixed (unlocked, enabled, password changed) and try again."}
}

func diagNetworkLogonDenied(account string) diag.Diagnosis {
	return diag.Diagnosis{Code: diag.NetworkLogonDenied,
		Summary: account + ` may not log on over the network on this computer.`,
		Fix:     `Grant the account "Access this computer from the network" and remove it from "Deny access to this computer from the network" (Local Security Policy, User Rights Assignment), or use another account.`}
}

func diagNTLMBlocked() diag.Diagnosis {
	return diag.Diagnosis{Code: diag.NTLMBlocked,
		Summary: "The computer refuses NTLM logons (STATUS_NTLM_BLOCKED).",
		Fix:     `Use Kerberos: connect with a domain account (DOMAIN\user or user@REALM) to the computer's DNS name (connect -auth kerberos). Otherwise allow incoming NTLM on the computer ("Network security: Restrict NTLM: Incoming NTLM traffic").`}
}

func diagGuest(account string, local, joined bool) diag.Diagnosis {
	if local {
		return diag.Diagnosis{Code: diag.GuestOnly,
			Summary: "The computer logged " + account + " on as Guest: it uses the \"Guest only\" sharing model for local accounts, so no local account can act as administrator over the network.",
			Fix:     `Set "Network access: Sharing and security model for local accounts" to "Classic - local users authenticate as themselves" (Local Security Policy, or ForceGuest=0 under HKLM\SYSTEM\CurrentControlSet\Control\Lsa)` + joinedHint(joined) + "."}
	}
	return diag.Diagnosis{Code: diag.GuestMapped,
		Summary: "The computer logged " + account + " on as Guest: it does not know the account (wrong domain, or no trust) and maps unknown users to Guest.",
		Fix:     `Check the domain part of the account. Use an account the computer knows, or disable guest mapping ("map to guest" on Samba; the Guest account and "Guest only" model on Windows).`}
}

func joinedHint(joined bool) string {
	if joined {
		return ", or use a domain administrator account, which this setting does not affect"
	}
	return ""
}

func diagNotAdmin(account string, local, builtin bool) diag.Diagnosis {
	if local && builtin {
		return diag.Diagnosis{Code: diag.UACRemote,
			Summary: account + " is the computer's built-in Administrator (RID 500) but is not an administrator over the network: UAC remote restrictions apply to it because \"Admin Approval Mode for the Built-in Administrator account\" (FilterAdministratorToken) is enabled.",
			Fix:     `Disable that policy, or set HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\LocalAccountTokenFilterPolicy (DWORD) to 1, or use a domain administrator account.`}
	}
	if local {
		return diag.Diagnosis{Code: diag.UACRemote,
			Summary: account + " logged on but is not an administrator over the network. For a local account this is usually UAC remote restrictions: only the built-in Administrator keeps its rights remotely.",
			Fix:     `Add the account to the local Administrators group, and set HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\LocalAccountTokenFilterPolicy (DWORD) to 1, or use the built-in Administrator or a domain administrator account.`}
	}
	return diag.Diagnosis{Code: diag.NotAdmin,
		Summary: account + " logged on but is not an administrator on this computer.",
		Fix:     "Use an account that is in the computer's local Administrators group (for example a domain administrator), or add this account to it."}
}

func diagAdminShareMissing() diag.Diagnosis {
	return diag.Diagnosis{Code: diag.AdminShareMissing,
		Summary: "The computer has no ADMIN$ share.",
		Fix:     `Re-enable the administrative shares (remove AutoShareWks=0 / AutoShareServer=0 under HKLM\SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters and restart the Server service).`}
}

func diagSCMUnavailable() diag.Diagnosis {
	return diag.Diagnosis{Code: diag.SCMUnavailable,
		Summary: "The Service Control Manager could not be reached over the \\pipe\\svcctl named pipe.",
		Fix:     "Check that the computer allows remote service management (the firewall rule \"Remote Service Management\" and the RPC services)."}
}

func diagSigning() diag.Diagnosis {
	return diag.Diagnosis{Code: diag.SigningMismatch,
		Summary: "SMB signing could not be agreed or a signature did not verify.",
		Fix:     "Make sure the computer supports SMB signing (every Windows version since 2000 does). A device in the path that alters SMB traffic also causes this."}
}

func diagEncryption() diag.Diagnosis {
	return diag.Diagnosis{Code: diag.EncryptionUnsupported,
		Summary: "Encryption is required by this console, but the computer cannot encrypt SMB (it needs SMB 3, Windows 8 / Server 2012 or later).",
		Fix:     "Allow unencrypted, signed sessions in the console's settings, or update the computer."}
}

func diagDowngrade(info smbconn.Info) diag.Diagnosis {
	if info.Dialect != 0 && !info.HasChallenge {
		return diag.Diagnosis{Code: diag.SMBDowngrade,
			Summary: "The computer offered only SMB " + info.Dialect.String() + ", below the minimum dialect this console accepts; no credentials were sent.",
			Fix:     "Enable SMB 3 on the computer (Windows 8 / Server 2012 or later), or check for a device in the path that strips SMB dialects."}
	}
	return diag.Diagnosis{Code: diag.SMBDowngrade,
		Summary: "The SMB negotiation with the computer failed validation: something in the network path changed it (stripped dialects, signing or encryption).",
		Fix:     "Look for a device or host intercepting SMB between this console and the computer; do not use this path to deploy."}
}

func diagProtocolPanic(host string) diag.Diagnosis {
	return diag.Diagnosis{Code: diag.SMBProtocol,
		Summary: host + " sent an answer that the SMB or RPC client could not handle: the computer is broken or hostile.",
		Fix:     "Check the computer; do not deploy to it until it answers normally."}
}

func diagProtocol() diag.Diagnosis {
	return diag.Diagnosis{Code: diag.SMBProtocol,
		Summary: "The computer did not answer as an SMB2/3 server: it may speak only SMB1 (Windows XP / Server 2003), or something other than SMB listens on port 445.",
		Fix:     "Enable SMB2/3 on the computer; SMB1 is not supported."}
}

func diagConnLost() diag.Diagnosis {
	return diag.Diagnosis{Code: diag.ConnectionLost,
		Summary: "The computer closed the SMB connection.",
		Fix:     "Try again; if it persists, check that the computer accepts SMB2/3 connections from this console (security software may reset them)."}
}
