// Package standard wires lanconnect's own concrete pieces into a
// session.Config, so that a console that wants the usual Connect On LAN does
// not have to adapt them itself.
//
// Package session sees only interfaces (an Authenticator, a Preflighter, a
// Deployer, Launchers, a Journal per session). This package is where the
// standard choices are made and adapted to them:
//
//   - authentication: adauth.SMBAuthenticator;
//   - preflight: remotereg's Remote Registry reading (Preflighter);
//   - deployment: deploy.Copy into a new folder of the session's own
//     directly under ADMIN$, lanconnect-<session>-<random> (Deployer);
//   - launch: remotereg's Service Control Manager launcher ("scm"), then
//     wmi's Win32_Process.Create ("wmi"), or only one of them (Method,
//     Launcher);
//   - cleanup: a deploy.Journal per session, in memory or persisted as
//     DIR/<session>.json, undone with the undo functions of files and of
//     the launchers, and only when every entry is within Options.Scope
//     (Journals, Journal, CleanupReport).
//
// Apply fills those fields of a session.Config from Options. It owns
// Authenticator, Preflight, Deployer, Launchers and NewJournal, and sets
// ServicePrefix, Vendor and AppletName when Options gives them. It leaves
// every other field to the caller: discoverers, credentials and the prompt,
// authorisation, the check-in or Readiness, applet arguments and parameters,
// timeouts, concurrency and the session's logger.
//
// It does not discover hosts, hold or ask for credentials, serve the
// check-in, build or sign the applet, or choose flags and output formats:
// examples/connect and examples/console show those. It adds no behaviour to
// the pieces it wires; each keeps its own defaults unless Options overrides
// it. Nothing it logs or returns contains a credential.
package standard
