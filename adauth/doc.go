// Package adauth authenticates a console to Windows computers and reads the
// computers of an Active Directory domain.
//
// It owns [Credentials] (user, domain and a password or NT hash, never
// printed), the Authenticator that proves over SMB2/3 with Kerberos or NTLMv2 that the
// credentials are administrator on a target and diagnoses why not, the
// credential-source and retry rules a console uses to prompt for new
// credentials, and the directory discovery.Discoverer that streams computer
// objects from LDAP over TLS. A DC located through DNS SRV records (which
// a host on the LAN can spoof) never gets a clear password: it gets an
// NTLM bind, and a simple bind needs the DC's explicit URL.
//
// Before it sends an AUTHENTICATE, the Authenticator compares the computer
// name the caller expects (WithExpectedName) with the identity in the
// computer's NTLM CHALLENGE, and fails with ErrIdentityMismatch
// ("identity-mismatch") when another computer answered.
//
// [LockoutGuard] keeps a run of authentications from locking an account
// out: credentials are proved on one computer before the others use them,
// credentials that a computer refuses ([CredentialsRefused]: wrong
// password, locked, disabled or expired account) are sent to no other
// computer ([ErrCredentialsRefused], diagnosis "credentials-refused"), and
// the prompts those refusals cause are joined into one. Package session
// runs every Client's authentications under one.
//
// [SMBAuthenticator] refuses a negotiation it cannot trust
// ([ErrDowngrade]): a dialect below MinDialect, or an SMB 3.0/3.0.2
// negotiation that FSCTL_VALIDATE_NEGOTIATE_INFO contradicts. A Grant's
// Facts say whether the negotiation was validated and whether encryption
// was asked for but not obtained.
//
// [SMBAuthenticator] reaches SMB on TCP 445 and, when 445 is refused or
// filtered, through the NetBIOS session service on TCP 139
// (SMBAuthenticator.Transports; Facts.Transport says which carried the
// session). The name check is the same on both, and no second transport
// is tried once one reached the computer: credentials go to it once.
// [LocalAdminSource] is the contract of a source of a computer's own local
// administrator credentials (package laps reads LAPS passwords); such an
// account is local, so it authenticates with NTLM only. For legacy LAPS,
// [BuiltinAdministrator] asks a computer's LSA for the name of its RID-500
// account. [Directory.SearchOne] reads one directory object, and
// Directory.LAPS makes the listing report which LAPS password is readable
// (Host.LAPS), never the password.
// Kerberos: [SMBAuthenticator] logs on with Kerberos or NTLM by its
// [AuthPolicy] (Auth): [AuthAuto], the default, takes Kerberos for a
// domain account when the computer's DNS name is known (WithDNSName, a DNS
// expected name, or a DNS name as the address) and a ticket cache is
// given ([Kerberos], made with NewKerberos, owned by the caller and shared
// by every host and by [Directory]: one TGT per credential), and NTLM
// where Kerberos cannot work; [AuthKerberos] never uses NTLM. The ticket
// is for cifs/FQDN and the computer must prove it holds that name's key
// (mutual authentication). Facts.Auth records the method. Launchers'
// own RPC connections to a Kerberos grant's computer use Kerberos to
// host/FQDN (through internal/grantsess). Kerberos failures have their
// own diagnoses (ErrKerberos, codes kdc-unreachable, clock-skew, ...).
// A Directory binds with Kerberos (BindKerberos: SASL GSSAPI over TLS).
//
// It does not copy files or start programs (see package deploy and the
// launchers), and it never stores credentials anywhere but in memory.
package adauth
