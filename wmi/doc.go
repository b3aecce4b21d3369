// Package wmi launches the applet with WMI's Win32_Process.Create over DCOM
// (TCP 135, then a dynamic port), and reads the OS facts of a target through
// a Win32_OperatingSystem query.
//
// Launcher implements deploy.Launcher (Name "wmi"; Launch on a
// *deploy.Target, with its Grant's address and credentials: WMI does not
// use the grant's SMB session, so a Grant built from an address and
// credentials works too) as the fallback for targets where the Service
// Control Manager path is unavailable. It is slower than that path, needs
// no service, and leaves no service behind. It does not copy files, and it
// writes nothing to the journal: the only thing it creates is the process,
// which Handle.Stop terminates (Win32_Process.Terminate). Handle.Running
// asks WMI whether the ProcessId still exists. Launcher.Preflight
// (deploy.Preflighter) reads Caption, Version, BuildNumber and
// OSArchitecture from Win32_OperatingSystem into a deploy.Preflight.
// Launcher.Check (deploy.Checker) opens a session as Launch does, up to the
// login on the dynamic port, and releases it, calling no method.
//
// # Sequence
//
// On TCP 135: IObjectExporter.ServerAlive2, then IActivation.RemoteActivation
// of the WbemLevel1Login class. On the dynamic port named by the OXID
// bindings (always dialed on the target's own address):
// IWbemLevel1Login.NTLMLogin("//./root/cimv2"), IWbemServices.GetObject
// ("Win32_Process") and ExecMethod("Create") with in-parameters encoded
// from the class's method signature (CommandLine, CurrentDirectory), then
// an ExecQuery that confirms a Win32_Process with the returned ProcessId
// exists. Every remote object is released (IRemUnknown2.RemRelease) and
// every connection closed before Launch returns. go-msrpc's generated
// DCOM/WMI clients do the wire work.
//
// # Security
//
// Each connection (port 135, the dynamic port) has its own NTLM security
// context, built by internal/rpcauth from the target's credentials (never
// go-msrpc's global store) by the connection's first bind and shared by
// the interfaces bound after it; a connection that go-msrpc replaced after
// a failure gets a new one. It runs at PKT_PRIVACY by default with the
// signature of every sealed response verified (a tampered one fails with an
// error matching adauth.ErrIntegrity); Launcher.Level = adauth.RPCIntegrity
// can be chosen, adauth.RPCNone cannot (KB5004442 DCOM hardening). For a
// grant that logged on with Kerberos (Facts.Auth "kerberos"), the security
// contexts are Kerberos to RPCSS/FQDN from the grant's ticket cache
// instead, with the same guarantee: an altered response, or one whose
// verifier is missing or malformed, fails with adauth.ErrIntegrity
// (internal/krb wraps go-msrpc's Kerberos mechanism).
//
// # Failures
//
// Each step has its own deadline (Timeouts). A failure is a
// *deploy.LaunchError whose Step names the step (StepConnect,
// StepConnectDynamic, ...) and whose cause is an *EndpointError naming the
// port: port 135 refused or filtered, the dynamic port refused, filtered or
// silent (the field's 30-second hang becomes a fast, named error), and
// HResult codes (E_ACCESSDENIED from DCOM, WBEM_E_ACCESS_DENIED from the
// namespace) and ReturnValue codes (2, 3, 8, 9, 21) with diagnoses.
// Cancellation is prompt: every socket of the session is closed. A
// response that cannot be decoded fails with ErrMalformed instead of a
// panic. When the confirmation fails after Create started the process,
// Launch terminates it. Objects that cannot be released because the
// dynamic port went silent are left to the target's OXID resolver, which
// collects them when the client's pings stop.
package wmi
