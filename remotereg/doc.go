// Package remotereg launches the applet through the target's Service
// Control Manager (MS-SCMR) and reads and writes its registry through the
// Remote Registry service (MS-RRP), both over SMB named pipes on the grant's
// existing session, with the SCM over ncacn_ip_tcp as a fallback.
//
// # Launch
//
// Launcher implements the plugin interfaces of package deploy:
// deploy.Launcher (Name "scm"), deploy.Preflighter and deploy.Undoer.
// Launch works on a *deploy.Target: its Grant's SMB session for the named
// pipes (a Grant without one, built from an address and credentials,
// leaves TransportTCP only), and its Journal, in which every change is
// recorded as an artifact of kind "remotereg.service",
// "remotereg.registry-key" or "remotereg.service-state". Launch:
//
//  1. validates the deploy.LaunchSpec;
//  2. when the spec has parameters, writes them as REG_SZ values under
//     HKLM\SOFTWARE\<Vendor>\<Applet>\<SessionID>, journaling every key it
//     creates before the BaseRegCreateKey call (levels that exist already
//     are not touched). The session's key gets a protected DACL that lets
//     only SYSTEM and Administrators in (in BaseRegCreateKey, and again with
//     BaseRegSetKeySecurity, read back to check: Samba ignores the first
//     and honours the second); where a server keeps another DACL the values
//     are still written and a warning is logged, so parameters must never
//     be secrets. If \pipe\winreg is not there, it starts the
//     RemoteRegistry service through the SCM first (setting a disabled
//     service to manual start), journaling its original start type and
//     state;
//  3. on the first transport that works (\pipe\svcctl, then svcctl over
//     TCP on the port that the endpoint mapper on TCP 135 names), chooses
//     the name (prefix + 8 random hex digits), journals it, creates an
//     own-process, demand-start service of that name, starts it and waits
//     for SERVICE_RUNNING with back-off and a deadline;
//  4. marks the service for deletion once it runs (unless KeepService), so
//     nothing outlives the applet.
//
// On failure it undoes what it did, also when the context was cancelled,
// and returns a *deploy.LaunchError whose Kind is one of deploy's
// sentinels: ErrAccessDenied (not an administrator, or UAC remote
// restrictions), ErrServiceExists, ErrNotServiceAware (error 1053: the
// applet is not a service), ErrNotExecutable (error 193: not a Windows
// program for the computer's architecture), ErrLaunchUnsupported (nca_op_rng_error and friends: the signal to fall
// back; Samba answers CreateService so over the pipe), ErrUnreachable (a
// refused port or a missing pipe) and ErrTimeout (an endpoint that does
// not answer; the diagnosis names host and port).
//
// # Security
//
// Every RPC connection gets its own NTLM security context from
// internal/rpcauth, sealed (PKT_PRIVACY) by default, with the response
// signature check that go-msrpc v1.5.2 skips at that level restored; a
// tampered response fails with an error matching adauth.ErrIntegrity. The
// level is Launcher.Level (adauth.RPCLevel); the polling pace is
// Launcher.Backoff. Over the pipe, the
// SMB session's signing protects integrity as well. For a grant that
// logged on with Kerberos, every connection (pipes and TCP) authenticates
// with Kerberos to host/FQDN from the grant's ticket cache instead of
// NTLM, which a domain that refuses NTLM refuses on RPC too; an altered
// Kerberos-sealed response, or one whose verifier is missing or
// malformed, fails with adauth.ErrIntegrity as well (internal/krb).
//
// # Cleanup
//
// Every change is a Change (plain data) recorded in the target's
// deploy.Journal before the call that makes it, and undone by the function
// that Launcher.Undoers returns (an object that does not exist counts as
// undone), so a later process can clean up from a stored journal even
// after a crash during the call. When a create call fails
// without the server's answer that nothing was made (a fault, a lost
// connection, a cancel), the launcher removes the object by name at once;
// after a cancel the entry also stays journaled, since the server may
// still carry out the abandoned call, and undoing the journal repeats the
// removal. Handle.Stop stops and deletes the service,
// removes the parameter keys and restores the Remote Registry service.
//
// Launcher.Undoers (deploy.Undoer) gives deploy.Journal.Undo the undo
// functions for remotereg's artifacts; service changes remember the
// transport they were made over, so that undo reaches the same Service
// Control Manager. Launcher.Scope restricts what a journal may name.
// ChangeFromArtifact reads an artifact back as a Change, for a recovery
// tool that shows what a journal holds.
//
// Preflight (deploy.Preflighter) reads the OS product, version, build,
// architecture and SystemRoot, and the Lsa and UAC settings that the
// session's diagnoses need, into a deploy.Preflight; missing keys are
// reported in Unknown, not as errors. It sets RemoteRegistryOff when
// Remote Registry cannot be reached. Preflight starts a stopped Remote
// Registry (journaled); Check (deploy.Checker) does not: it queries the
// service's state through the SCM, opens the SCM with create-service
// access and closes it, and reads the same values with KEY_READ only when
// Remote Registry already runs, since opening \pipe\winreg starts a stopped
// one on Windows.
//
// It does not copy files and does not decide between launchers: package
// session does.
package remotereg
