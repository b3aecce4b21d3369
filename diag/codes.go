package diag

// Every diagnosis code of the SDK. The strings are a contract (NDJSON
// "code" of examples/connect): they never change. docs/diagnoses.md
// explains each one.

// Reaching the computer and naming it (adauth, session).
const (
	FirewallRefused  Code = "firewall-445-refused"  // TCP 445 answered with a reset
	FirewallFiltered Code = "firewall-445-filtered" // TCP 445 did not answer
	NoRoute          Code = "no-route"              // no route, or no ARP answer
	NameNotResolved  Code = "name-not-resolved"     // no address answered for the name
	NameConflict     Code = "name-conflict"         // more than one computer answers for the name
	IdentityMismatch Code = "identity-mismatch"     // the NTLM challenge names another computer; nothing was sent
	NoAddress        Code = "no-address"            // the host has no address or name at all
	// NetBIOSSessionRefused: TCP 445 was closed, and TCP 139 answered but
	// its NetBIOS session service refused the SESSION REQUEST or
	// redirected it. (445 and 139 both closed keep the codes of 445,
	// whose summary then names 139 too.)
	NetBIOSSessionRefused Code = "netbios-session-refused"
)

// Logon and administrator checks (adauth).
const (
	LogonFailure          Code = "logon-failure"            // unknown user or wrong password
	NTLMv1Only            Code = "ntlmv1-only"              // logon failed and the peer looks LM/NTLMv1-only
	AccountDisabled       Code = "account-disabled"         // the account is disabled
	AccountLocked         Code = "account-locked"           // the account is locked out
	AccountExpired        Code = "account-expired"          // the account has expired
	PasswordExpired       Code = "password-expired"         // the password expired or must change
	LogonRestricted       Code = "logon-restricted"         // logon hours, workstations or blank password
	NetworkLogonDenied    Code = "network-logon-denied"     // no "access this computer from the network" right
	NTLMBlocked           Code = "ntlm-blocked"             // STATUS_NTLM_BLOCKED
	GuestOnly             Code = "guest-only"               // a local account was mapped to Guest ("Guest only" model)
	GuestMapped           Code = "guest-mapped"             // a domain account was mapped to Guest
	NotAdmin              Code = "not-admin"                // the account is not an administrator
	UACRemote             Code = "uac-remote-restrictions"  // a local administrator filtered by UAC
	AdminShareMissing     Code = "admin-share-missing"      // ADMIN$ does not exist
	AdminShareWriteDenied Code = "admin-share-write-denied" // ADMIN$ opens but cannot be written
	SCMUnavailable        Code = "scm-unavailable"          // \pipe\svcctl could not be used for the admin check
	SigningMismatch       Code = "signing-mismatch"         // SMB signing not agreed, or a bad signature
	EncryptionUnsupported Code = "encryption-unsupported"   // encryption required, the server cannot
	SMBProtocol           Code = "smb-protocol"             // not an SMB2/3 server, or an answer the client cannot handle
	SMBDowngrade          Code = "smb-downgrade"            // dialect below the minimum, or negotiation validation failed
	ConnectionLost        Code = "connection-lost"          // the server closed the connection
	ServerStatus          Code = "server-status"            // an NT status not listed above
	NoCredentials         Code = "no-credentials"           // no credentials to try
	CredentialsRefused    Code = "credentials-refused"      // these credentials were refused elsewhere; not tried again
	PromptCanceled        Code = "prompt-canceled"          // the technician canceled the credential prompt
)

// Kerberos (adauth, with internal/krb's diagnoses).
const (
	KerberosNeedsDNSName       Code = "kerberos-needs-dns-name"       // Kerberos was required for a target known by address only
	KerberosNeedsDomainAccount Code = "kerberos-needs-domain-account" // Kerberos was required for a local or workgroup account
	KerberosNotConfigured      Code = "kerberos-not-configured"       // Kerberos was required but the console has no ticket cache
	KDCNotFound                Code = "kdc-not-found"                 // no KDC found for the realm (krb5.conf, DNS SRV, DC)
	KDCUnreachable             Code = "kdc-unreachable"               // no KDC answered on TCP 88
	ClockSkew                  Code = "clock-skew"                    // the KDC refused our time; the summary says by how much
	KerberosUnknownUser        Code = "kerberos-unknown-user"         // the KDC does not know the user
	KerberosUnknownSPN         Code = "kerberos-unknown-spn"          // the KDC knows no computer with this DNS name
	KerberosWrongPassword      Code = "kerberos-wrong-password"       // pre-authentication failed
	KerberosAccountRevoked     Code = "kerberos-account-revoked"      // the KDC revoked the account without saying why
	KerberosNoCommonEtype      Code = "kerberos-no-common-etype"      // no common encryption type with the KDC
	KerberosMutualAuth         Code = "kerberos-mutual-auth"          // the server could not prove it owns the name
	KerberosError              Code = "kerberos-error"                // another Kerberos failure
)

// The session's own steps (session).
const (
	NotAuthorised       Code = "not-authorised"        // the console's Authorize hook refused
	Journal             Code = "journal"               // the cleanup journal could not be created
	PreflightFailed     Code = "preflight-failed"      // the target's settings could not be read (a note)
	RemoteRegistryOff   Code = "remote-registry-off"   // Remote Registry is stopped (a note)
	NTLMLevelLow        Code = "ntlm-level-low"        // the target's LmCompatibilityLevel is below 3 (a note)
	NoLauncher          Code = "no-launcher"           // no launch method configured
	TicketFile          Code = "ticket-file"           // the check-in ticket could not be written
	CheckinTimeout      Code = "checkin-timeout"       // the applet started but never checked in
	CheckinWrongAddress Code = "checkin-wrong-address" // the ticket came back from another address
	CheckinAddress      Code = "checkin-address"       // the check-in address cannot be reached from the target (loopback)
	ClientClosed        Code = "client-closed"         // the Client was closed before the session started
	AppletLost          Code = "applet-lost"           // the running applet stopped or lost its connection
	Panic               Code = "panic"                 // a protocol library panicked on an answer
	AccessDenied        Code = "access-denied"         // the target refused an operation for this account
)

// Copying the applet (deploy).
const (
	AppletFolderExists Code = "applet-folder-exists" // the session's folder already exists on the target
	AppletFolderUnsafe Code = "applet-folder-unsafe" // the folder is not one the session may create
	// AppletArchUnsupported: no applet variant runs on the target's
	// architecture (it would fail with ERROR_BAD_EXE_FORMAT, 193), or the
	// architecture is unknown and there is no default; nothing was copied.
	AppletArchUnsupported Code = "applet-arch-unsupported"
)

// Launching through the Service Control Manager (remotereg).
const (
	SCMNotSupported          Code = "scm-not-supported"           // the server does not implement the SCM call
	PipeNotAvailable         Code = "pipe-not-available"          // the named pipe is not served
	EndpointUnreachable      Code = "endpoint-unreachable"        // nothing accepted the connection
	EndpointTimeout          Code = "endpoint-timeout"            // no answer before the step deadline
	StartTimeout             Code = "start-timeout"               // StartService did not return in time
	ServiceExists            Code = "service-exists"              // a service of that name exists
	ServiceDisabled          Code = "service-disabled"            // the service is disabled
	ServiceMarkedForDeletion Code = "service-marked-for-deletion" // the SCM connection was lost; the service cannot be reopened
	AppletNotServiceAware    Code = "applet-not-service-aware"    // error 1053: the applet is not a service
	AppletWrongArchitecture  Code = "applet-wrong-architecture"   // error 193: not a program for this computer
)

// Launching through WMI (wmi).
const (
	WMIRPCRefused             Code = "wmi-rpc-refused"              // port 135 refused or reset the connection
	WMIRPCFiltered            Code = "wmi-rpc-filtered"             // port 135 did not answer
	WMIDynamicPortRefused     Code = "wmi-dynamic-port-refused"     // WMI's dynamic port refused the connection
	WMIDynamicPortFiltered    Code = "wmi-dynamic-port-filtered"    // WMI's dynamic port did not answer
	WMIConnectionReset        Code = "wmi-connection-reset"         // a WMI connection was reset during a step
	WMITimeout                Code = "wmi-timeout"                  // no answer before the step deadline
	WMIAccessDenied           Code = "wmi-access-denied"            // WMI or RPC refused the account
	WMIDCOMAccessDenied       Code = "wmi-dcom-access-denied"       // DCOM refused to activate WMI
	WMINotSupported           Code = "wmi-not-supported"            // DCOM/WMI not served
	WMIError                  Code = "wmi-error"                    // another WMI status
	WMICreateAccessDenied     Code = "wmi-create-access-denied"     // Win32_Process.Create: access denied
	WMICreatePathNotFound     Code = "wmi-create-path-not-found"    // Win32_Process.Create: path not found
	WMICreateInvalidParameter Code = "wmi-create-invalid-parameter" // Win32_Process.Create: bad command line
	WMICreateFailed           Code = "wmi-create-failed"            // Win32_Process.Create: other failure
)

// Codes every layer uses.
const (
	RPCIntegrity Code = "rpc-integrity" // a sealed RPC response failed its signature check
	Canceled     Code = "canceled"      // the caller's context was canceled
	Timeout      Code = "timeout"       // the target stopped answering
	Other        Code = "other"         // anything else; see the error
)

// LAPS: the computer's own local administrator password from the
// directory (package laps, session.Config.LocalAdmin).
const (
	LAPSNoAttribute  Code = "laps-no-attribute"  // the computer object has no LAPS password attribute
	LAPSNotReadable  Code = "laps-not-readable"  // the account may not read the LAPS password (confidential attribute)
	LAPSExpired      Code = "laps-expired"       // the LAPS password has expired
	LAPSRefused      Code = "laps-refused"       // the DC refused the decryption key; names the authorised group SID
	LAPSNotFound     Code = "laps-not-found"     // no computer object with the computer's name
	LAPSNoName       Code = "laps-no-name"       // the host has no name of its own to look its password up by
	LAPSFailed       Code = "laps-failed"        // the directory or the key service could not be used, or malformed LAPS data
	LAPSLogonRefused Code = "laps-logon-refused" // the computer refused its own LAPS password too
)
