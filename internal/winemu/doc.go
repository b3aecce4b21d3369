// Package winemu emulates the Windows RPC endpoints that no open-source
// server provides: the endpoint mapper, Service Control Manager service
// creation and start, and DCOM/WMI Win32_Process.Create.
//
// It is a test peer, built on go-msrpc's generated server stubs and NDR
// codec and served over TCP (ncacn_ip_tcp) with NTLM or Kerberos. It really starts
// the deployed applet inside a lab target. It is not a Windows
// implementation and must not be exposed outside a lab.
//
// # Server
//
// A Server serves DCE/RPC connection-oriented PDUs itself (go-msrpc has
// the PDU types but no server transport): bind, bind_ack and bind_nak,
// alter_context, auth3, requests and responses fragmented both ways at
// the client's maximum fragment size, and faults. Security is NTLM (auth
// type 10, three legs ending in auth3) or SPNEGO wrapping NTLM (auth type
// 9, ending in an alter_context), with the server's own user table, at
// connect, integrity (sign) and privacy (seal) level. Kerberos (auth type
// 16, DCE style: AP-REQ in bind, AP-REP in bind_ack, the client's AP-REP
// in auth3) is served with Server.Keytab, the computer's keys (host/,
// RPCSS/; winemu -keytab FILE), through go-msrpc's krb5 acceptor; the
// client is the user named by its ticket's principal (without realm),
// and Server.NoNTLM (-no-ntlm) refuses NTLM and SPNEGO binds. Auth type 10 uses winemu's own NTLMv2 acceptor, which checks
// as Windows does (MS-NLMP 3.2.5.1.2): the NTProofStr against the
// account's NT hash always, the MIC only when the client's MsvAvFlags
// announces one, and the Version field not at all, so impacket (which
// sends neither) authenticates as it does to Windows. It derives the
// session key (with KEY_EXCH) and the signing and sealing keys itself,
// and refuses NTLMv1, anonymous and OEM-string logons. SPNEGO still
// goes through go-msrpc's acceptors, which require the MIC. Each
// fragment is verified or protected on its own, and the calls of a
// connection are handled in order. A failed auth3 gets no reply, as on
// Windows; the next request on that context is faulted with status 5.
// Unauthenticated binds are accepted (the endpoint mapper needs them);
// the SCM then denies access.
// Transfer syntax is NDR 2.0 only; bind-time feature negotiation is
// acknowledged with no features.
//
// Start (or ListenAndServe) listens on host:135 for the endpoint mapper
// and on a dynamic port for every interface, and the endpoint mapper
// (ept_map and ept_lookup, which go-msrpc's client uses) resolves svcctl
// to that dynamic port, as Windows does. Serve serves any listener you
// give it.
//
// # Service Control Manager
//
// SCM implements OpenSCManagerW, CreateServiceW, OpenServiceW,
// StartServiceW, QueryServiceStatus, QueryServiceStatusEx (with the PID),
// ControlService (stop, interrogate), DeleteService, ChangeServiceConfigW,
// QueryServiceConfigW and CloseServiceHandle over an in-memory table. StartServiceW maps the
// binary path under Server.Root (see MapPath and ParseCommandLine) and
// runs it, in the server's own network namespace and in its own process
// group, with the command line's arguments followed by StartService's;
// the environment gains WINEMU_SERVICE_NAME and ServiceStatusFDEnv, the
// number of an inherited pipe on which the process writes "running", as
// a Windows service reports SERVICE_RUNNING. The service is START_PENDING
// until then; StartService returns once the process reports, and a
// process that does not report within Server.ServiceStartTimeout (30 s by
// default, Windows' ServicesPipeTimeout; negative turns the wait off), or
// exits first, is killed and StartService fails with 1053, as on Windows.
// A file the kernel cannot execute fails with 193. Stopping sends SIGTERM to the
// group, then SIGKILL after two seconds; Close stops every running
// service that way unless Server.KeepProcesses is set or the service's
// name matches Server.KeepServices. Delete marks the service, which
// disappears once it is stopped and its last handle is closed (handles
// are run down when their connection closes). Non-administrators get
// only the rights Windows grants Authenticated Users, so asking for
// SC_MANAGER_CREATE_SERVICE or for SERVICE_START gets ERROR_ACCESS_DENIED.
// Calls can be made in-process with WithCaller.
//
// # DCOM and WMI
//
// EnableWMI adds the DCOM object exporter and activation (on the endpoint
// mapper's port), IRemUnknown2 and a WMI provider for root\cimv2 (on the
// dynamic port the OXID bindings name); see WMI for what it serves,
// WMIFaults for its fault modes, and FilteredPort. Activation is served
// both as IActivation.RemoteActivation (the SDK's) and as
// IRemoteSCMActivator.RemoteCreateInstance (Windows clients' and
// impacket's), with the same rules and results; RemoteCreateInstance
// answers with activation properties shaped as Windows Server 2016's
// (PropsOutInfo, then ScmReplyInfoData). RemoteGetClassObject is not
// served.
//
// # Fault injection
//
// Server.Faults switches failure modes at run time: Deny, Hang, Refuse,
// ServiceDidNotStart (the process is killed at once and StartService
// fails with 1053, without waiting out the timeout) and Tamper (see
// Faults and TamperSpec).
//
// # Adding interfaces (DCOM and others)
//
// Register adds an Interface, keyed by interface UUID and major version,
// before the server starts serving. Its Handle has the shape of go-msrpc's
// generated XxxServerHandle functions (dcerpc.ServerHandle), so a generated
// server plugs in as:
//
//	srv.Register(winemu.Interface{
//		Name:   "IObjectExporter",
//		Syntax: *iobjectexporter.ObjectExporterSyntaxV0_0,
//		Handle: iobjectexporter.NewObjectExporterServerHandle(impl),
//		OnEndpointMapperPort: true, // also served on 135, like Windows
//	})
//
// For ORPC calls, the request's object UUID is the IPID: set
// Interface.Object to look the object up and return the handler that
// serves it (return false to fault with nca_unk_if). Handlers learn the
// caller (user, administrator flag, auth level, object UUID, connection
// and addresses) from CallFromContext, may fault a call with any status
// by returning a FaultError, and get Interface.Rundown(connID) when a
// connection that bound the interface closes. To serve a set of
// interfaces on an extra dynamic port (the port an object exporter puts
// in its string bindings, for example), call ListenExtra(ctx, host,
// syntaxes...): it returns the new address, registers it with the
// endpoint mapper for those interfaces, and EndpointFor reports it. Serve
// does the same for a listener you opened yourself.
//
// # What a local user sees
//
// Tests play a non-administrator on the target with three views:
// Server.BeforeStart is called with every command line (a service's binary
// path at StartService, Win32_Process.Create's CommandLine) before the
// process starts; SCM.Installed is the log of every service created, as
// System event 7045 keeps it; Win32_Process instances carry CommandLine,
// ExecutablePath and CreationDate (CIM DATETIME). The WMIFaults ReusedPID
// mode makes a process ID look like another process's, as when Windows
// reuses an ID, and WMI.Terminated lists the IDs Terminate was called on.
//
// # Standalone
//
// cmd/winemu runs the emulator next to any Samba target; see its package
// documentation.
package winemu
