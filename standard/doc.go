// Package standard wires lanconnect's own concrete pieces into a
// session.Config, so that a console that wants the usual Connect On LAN does
// not have to adapt them itself.
//
// Package session sees only interfaces (an adauth.Authenticator, and
// deploy's Preflighter, Deployer and Launchers). This package is where the
// standard choices are made:
//
//   - name resolution: Resolver, DNS first and a NetBIOS broadcast only
//     when DNS has no answer, every responder reported (session refuses
//     a name that more than one address answers for);
//   - authentication: adauth.SMBAuthenticator, or any
//     adauth.Authenticator (Options.Authenticator);
//   - preflight: remotereg's Remote Registry reading (the SCM launcher is
//     the deploy.Preflighter);
//   - deployment: deploy.Copy into a new folder of the session's own
//     directly under ADMIN$ (Deployer), and the check-in ticket file next
//     to the applet with deploy.PutFile (Deployer is a
//     deploy.FileDeployer);
//   - launch: remotereg's Service Control Manager launcher ("scm"), then
//     wmi's Win32_Process.Create ("wmi"), or only one of them (Method),
//     followed by the vendor's own (Options.Launchers);
//   - checks: both launchers implement deploy.Checker, so
//     session.Client.Check on a Config that Apply filled reports Remote
//     Registry, the registry values and WMI without changing the target
//     (a vendor launcher that does not implement it is reported unknown);
//   - cleanup: the session keeps a deploy.Journal per session (in memory,
//     or persisted in Config.JournalDir) and undoes it with the undo
//     functions of files and of every launcher that implements
//     deploy.Undoer, only when every entry is within Options.Scope
//     (Config.UndoScope; Options.ExtraScope adds the vendor's kinds).
//     Options.Undoers gives the same undo functions to a console that
//     recovers a persisted journal after a crash.
//
// Apply fills the fields of a session.Config it owns from Options. It
// always overwrites Resolver, Authenticator, Preflight, Deployer,
// Launchers, Undoers and UndoScope; it sets JournalDir, ServicePrefix,
// Vendor and AppletName only when Options gives them. It leaves every
// other field to the caller: discoverers, credentials and the prompt,
// authorisation, the check-in or Readiness, applet arguments and
// parameters, timeouts, concurrency and the session's logger.
//
// It does not discover hosts, hold or ask for credentials, serve the
// check-in, build or sign the applet, or choose flags and output formats:
// examples/connect and examples/console show those. It adds no behaviour to
// the pieces it wires; each keeps its own defaults unless Options overrides
// it. Nothing it logs or returns contains a credential.
package standard
