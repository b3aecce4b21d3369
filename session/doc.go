// Package session is the face of the SDK: it joins discovery,
// authentication, deployment and launch into what a console shows.
//
// A console builds a Client from a Config. Client.Hosts gives a live,
// filtered stream of merged hosts (a discovery.View whose filter may change
// at any time). Client.Connect returns at once a Session in Connecting and
// drives it through its steps: authorize (the console's own permission
// hook), authenticate (prompting for other credentials while
// adauth.ShouldPrompt allows, in step "credentials"), preflight, deploy,
// launch (each launcher in order, falling back only when a method cannot
// work on the target), and check-in, when the applet proves it runs. The
// session is then Running, or Failed with the step, the cause, a Diagnosis
// a technician can act on and every launcher attempt. Close stops the
// applet and undoes the session's journal, and reports what was and was
// not undone; a failed session is cleaned up before it reports Failed.
// Client.ConnectAll connects to many hosts with bounded concurrency.
//
// Names are claims. A host given by name only is resolved with
// Config.Resolver (standard's asks DNS first, NetBIOS only when DNS has no
// answer); when more than one address answers, the session fails with
// ErrNameConflict (diagnosis "name-conflict", the addresses listed) and
// sends nothing. A host that discovery flagged with a Conflict is refused
// the same way. A host's trusted address (DNS, the directory) is preferred
// to the first address seen, and its name goes to the Authenticator
// (adauth.WithExpectedName), which refuses a computer that answers under
// another name before sending credentials (ErrIdentityMismatch,
// "identity-mismatch"). A host given by IP address is not name-checked.
//
// The check-in ticket (console address, certificate pin, one-time token,
// expiry) never goes on the applet's command line, which local users of the
// target can read: the Deployer writes it to a file next to the applet
// (deploy.FileDeployer) and the command line names only that file. The console
// accepts the check-in only from the target's own address unless
// Config.CheckinFromAnyAddr is set (NAT); refused attempts are EventRefused
// events with the peer's address. An applet that says goodbye when asked to
// stop is not killed by its launcher (deploy.ExitNotifier).
//
// A Client protects the technician's account from lockout: its sessions
// authenticate under one adauth.LockoutGuard, so shared credentials are
// proved on one host before the others try them, and credentials that a
// host refuses (wrong password; locked, disabled or expired account) are
// tried on no other host. Those sessions fail at once with
// adauth.ErrCredentialsRefused (diagnosis "credentials-refused") or, with a
// Config.Prompt, wait for one prompt shared by all of them. "Not
// administrator" is a successful logon and does not stop the others.
//
// A panic in a step (a protocol decoder of go-smb2 or go-msrpc on a
// hostile server's answer, in a goroutine of this package or of the
// launchers and deploy) fails that session with ErrPanic; its cleanup
// still runs and other sessions are not affected. Panics in the
// libraries' own goroutines cannot be recovered by anyone: package
// internal/smbconn validates every SMB frame before go-smb2 sees it for
// that reason.
//
// Each session delivers its events in order on a channel it owns and
// closes after the final event; a slow reader never blocks the session's
// work nor other sessions (see Session.Events for the rules).
//
// The steps see a *deploy.Target and are deploy's plugin interfaces:
// deploy.Preflighter, deploy.Deployer and deploy.Launcher. Once a session
// has authenticated it makes its own *deploy.Journal (Target.Journal), in
// memory or persisted as Config.JournalDir/<session ID>.json, in which
// every step records what it creates on the target. Cleanup undoes it,
// newest first, with deploy.FileUndoers and the Undoers of every
// configured launcher, preflighter and deployer that implements
// deploy.Undoer, plus Config.Undoers; with Config.UndoScope a journal that
// names anything outside the scope is not undone at all and every entry
// is reported left (deploy.ErrOutOfScope). A persisted file is removed
// once nothing is left in it, and kept otherwise for a later recovery; it
// is trusted input, so the directory must be the console's alone.
//
// The package sees only interfaces: it does not choose concrete
// discoverers, deployers or launchers. The examples, package standard and
// the vendor's console do. Credentials never appear in its events, errors
// or logs.
package session
