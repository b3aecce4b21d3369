// Package krb is the SDK's Kerberos core: credentials, one TGT per
// credential shared by every host and transport, service tickets cached
// per SPN, KDC location, a security context for SMB session setup, and
// typed diagnoses of what a KDC or a target refused.
//
// It is built on go-msrpc v1.5.2's Kerberos mechanism (ssp/krb5, ssp/spnego)
// and the gokrb5 fork it uses (github.com/oiweiwei/gokrb5.fork/v9), which
// do the protocol work. This package decides who owns what:
//
//   - A Cache, made by the caller and closed by it (no global state), holds
//     per Credential one TGT and per SPN one service ticket. Every
//     Initiator it returns gets an in-memory credentials cache with those
//     two tickets, so go-msrpc's mechanism, which would otherwise log on
//     again for every security context (an AS exchange per bind), makes no
//     AS or TGS exchange of its own. Each Initiator has its own security
//     context and credential; go-msrpc's global credential and mechanism
//     stores are never used, and KRB5CCNAME, KRB5_CONFIG and
//     /etc/krb5.conf are never read implicitly. The TGS exchanges of a
//     bulk run's hosts go to the KDC in parallel (one per SPN at a time),
//     not one after the other.
//   - Credentials: a password (AS exchange with pre-authentication), an NT
//     hash (RC4-HMAC key), an AES key, a keytab, or a ccache (a TGT made
//     elsewhere, for example by kinit; no AS exchange). A failed AS
//     exchange is remembered: the same wrong password is not sent again
//     through the same Cache, since each try counts towards the account's
//     lockout.
//   - SPNs (SPN): cifs/FQDN for SMB and the pipes that ride it, host/FQDN
//     for svcctl and winreg over TCP, RPCSS/FQDN for DCOM activation,
//     ldap/FQDN for the directory. An IP address or a short name fails
//     with ErrNeedsDNSName.
//   - KDC location (Cache.Locate): an explicit Config.KDC wins; otherwise
//     the realm's kdc lines of Config.KRB5Conf, then DNS SRV
//     _kerberos._tcp.REALM through Config.Resolver, then Config.DC. The
//     Kerberos library gets IP addresses only and always uses TCP.
//     Cache.RealmOf finds the realm of a computer from its DNS name (the
//     longest parent domain with _kerberos._tcp records), for a user
//     typed as DOMAIN\user with a NetBIOS domain.
//   - Counting (Cache.Stats): AS exchanges, AS-REQ and TGS-REQ messages
//     and KDC connections, as seen on the wire by the package's KDC
//     dialer.
//   - Diagnoses (*Error, matched with errors.Is): ErrKDCUnreachable,
//     ErrClockSkew (Error.Skew from the KRB-ERROR's server time),
//     ErrPrincipalUnknown, ErrSPNUnknown, ErrWrongPassword,
//     ErrAccountLocked, ErrAccountDisabled, ErrAccountExpired (all three
//     match ErrAccount; the reason comes from the NT status in the
//     KRB-ERROR's e-data), ErrNoCommonEtype, and ErrNTLMBlocked for a
//     target that refuses NTLM (DiagnoseNTLM). The library keeps only the
//     text of a KRB-ERROR, so the package's KDC dialer reads the replies
//     itself.
//
// # Policy
//
// Choose applies the -auth policy (auto, kerberos, ntlm) to one target and
// account: auto takes Kerberos for a domain account when the target's DNS
// name is known, NTLM only where Kerberos cannot work (an address only, a
// workgroup computer, a local account) and the target has not refused
// NTLM; kerberos fails with ErrNeedsDNSName or ErrNotDomainAccount where
// it cannot work. The caller records the Method used.
//
// # SMB
//
// Cache.Initiator returns a go-smb2 Initiator for internal/smbconn
// (Options.Initiator): SPNEGO with Kerberos only, mutual authentication
// required, DCE style (the three legs go-smb2's session setup expects,
// which Windows and Samba accept). The server must answer with an AP-REP,
// which only the holder of the service's key can make: a host that
// answers for a name it does not own cannot complete the logon
// (ErrMutualAuth), and without the session key it could not sign or
// decrypt either.
//
// # DCE/RPC and LDAP
//
// Cache.RPCOptions gives a go-msrpc bind its own Kerberos security
// context (auth type 16, DCE style, mutual authentication, sealed or
// signed) for host/FQDN or RPCSS/FQDN. Its mechanism is go-msrpc's,
// wrapped so that every received PDU that fails its check (altered on the
// way, verifier missing or malformed, a token header or sequence number
// that is not the acceptor's next) fails the call and every later one on
// the connection with ErrIntegrity (which is adauth.ErrIntegrity), and so
// that go-msrpc's decoder never panics on it: its AES unwrap did, on a
// response with no verifier. It cannot compare the encrypted copy of an
// AES token's header with the clear one (go-msrpc does not either), so a
// replayed PDU with a rewritten clear sequence number is refused only by
// the checksum over the signed DCE/RPC header (its call_id), which
// header signing gives. Cache.LDAPClient is a go-ldap
// GSSAPIClient for a SASL GSSAPI bind to ldap/FQDN: it checks the DC's
// AP-REP against its authenticator and the checksum of the DC's
// security-layer offer, and chooses no security layer (RFC 4752), so it
// belongs on LDAPS or StartTLS only.
//
// # What it does not do
//
// It does not renew tickets in the background (an expired ticket is
// replaced at its next use), does not follow cross-realm referrals on
// purpose (the library may), and does not wire itself into the public
// packages (adauth, session, the example commands): that follows the API
// sweep.
package krb
