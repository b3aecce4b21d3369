// Package session is the face of the SDK: it joins discovery,
// authentication, deployment and launch into what a console shows.
//
// A console builds a Client from a Config. Client.Hosts gives a live,
// filtered stream of merged hosts (a discovery.View whose filter may change
// at any time); every view of a Client shares one discovery, so that a
// console with many pages sweeps the network and binds to the directory
// once, and Client.Rescan starts it again. Client.Connect (or ConnectWith, with a prompt and a
// technician of the session's own) returns at once a Session in
// Connecting and drives it through its steps: authorize (the console's
// own permission hook), authenticate (prompting for other credentials
// while adauth.ShouldPrompt allows, in step "credentials"), preflight,
// deploy, launch (each launcher in order, falling back as Config.Fallback
// decides, by default only when a method cannot work on the target), and
// check-in, when the applet proves it runs. The session is then Running,
// or Failed with the step, the cause, a Diagnosis a technician can act on
// and every launcher attempt. Close stops the applet and undoes the
// session's journal, and reports what was and was not undone; a failed
// session is cleaned up before it reports Failed. Client.ConnectAll
// connects to many hosts with bounded concurrency.
//
// Client.Check answers "why can't I connect to this host?" without
// changing anything on it: it resolves and authenticates as Connect does
// (with adauth.WithReadOnly: administrator proved without writing), probes
// TCP 135, 139 and 445, and asks every launcher that implements
// deploy.Checker whether it would work; the CheckReport has one item per
// thing a Connect needs, each failing item with the diagnosis a Connect
// gives for the same cause, and Ready. It runs no preflight, copies,
// launches and journals nothing.
//
// Names are claims. A host given by name only is resolved with
// Config.Resolver (standard's asks DNS first, NetBIOS only when DNS has no
// answer); when more than one address answers, the session fails with
// ErrNameConflict (diagnosis "name-conflict", the addresses listed) and
// sends nothing. A host that discovery flagged with a Conflict is refused
// the same way. A host's trusted addresses (DNS, the directory) are tried
// in order (the next when one is unreachable) and its other, claimed
// addresses never used beside them (adauth.AddrsOf); Result.Addr is the
// one that answered. Its name goes to the Authenticator
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
// A computer's own local administrator (its LAPS password: package laps)
// is a credential source too: Config.LocalAdmin is asked when the current
// credentials are refused as a logon failure or not administrator (or
// first, with Config.LocalAdminFirst), before the prompt, only for a host
// with a name of its own, and its answer goes only to the computer whose
// NTLM challenge announces that name. It is never remembered, and
// Result.CredentialSource records where the proved credentials came from
// ("given", "prompt", "laps-windows", ...). Such an account is local, so
// it authenticates with NTLM only.
//
// A panic in a step (a protocol decoder of go-smb2 or go-msrpc on a
// hostile server's answer, in a goroutine of this package or of the
// launchers and deploy) fails that session with ErrPanic; its cleanup
// still runs and other sessions are not affected. Panics in the
// libraries' own goroutines cannot be recovered by anyone: package
// internal/smbconn validates every SMB frame before go-smb2 sees it for
// that reason.
//
// # Lifetimes
//
// Who owns what, and when each goroutine ends:
//
//   - The Client owns its sessions and the check-in server New started.
//     Client.Close starts closing every session not yet over and closes
//     that server at once (like http.Server.Close); Client.Shutdown waits
//     for every session's cleanup, or for its context, before it closes
//     the server (like http.Server.Shutdown). A Connect after either fails
//     at once with ErrClientClosed. The Client forgets a session as soon
//     as it is Failed or Closed.
//   - The Client owns its discovery: one discovery.Merge of
//     Config.Discoverers fanned out to every view by a
//     discovery.Broadcaster. The first Client.Hosts call starts it (or
//     Client.Rescan, before any view); a view's context does not bound
//     it. It ends when its discoverers have returned, and the hosts it
//     found stay in memory so that a later view starts with all of
//     them; or it is stopped (discoverers cancelled, views closed) by
//     Rescan, which starts the next one once the stopped discoverers have
//     returned, by Close, or by Shutdown, which waits for the discoverers
//     to return. A view's goroutine ends with its context or with its
//     discovery, whichever comes first.
//   - The context given to Connect bounds Connecting only, as a dial's
//     context does: when it ends before Running the session fails (and is
//     cleaned up); once Running it no longer matters, so a request's
//     context may be passed. A Running session ends with Session.Close,
//     Client.Close or Client.Shutdown, or when its applet's check-in
//     connection ends (Failed, ErrAppletLost). Its values reach every step
//     and the cleanup.
//   - A session's goroutine ends with its cleanup: Done is closed when
//     the session is Failed or Closed and nothing of it is still running,
//     except a step that ignored its context (within the step's timeout,
//     reported as left over). Session.Close waits for the cleanup or for
//     its own context.
//   - A session's events go on a channel it owns; its delivery goroutine
//     starts at the first Session.Events call and ends with the session,
//     whether anyone reads or not (the channel's buffer holds every event
//     but progress events, and it is closed after the final one).
//   - Session.Conn waits only while Connecting, and never past its
//     context.
//
// Event ordering: a session's events arrive in the order they happened.
// The first is Connecting; each step change is an EventState; launcher
// failures (EventAttempt) come right after the launch step they concern;
// refused check-ins (EventRefused) come during the check-in step;
// EventProgress events come only during the deploy step and may be
// coalesced (or dropped for a reader far behind); the last event is the
// Failed or Closed state, with the Result, after which the channel is
// closed. Every event but progress is delivered. Events of different
// sessions are not ordered with each other, and a slow reader never
// blocks the session's work nor other sessions (see Session.Events).
//
// The check-in address that an applet dials is never loopback for a
// target that is not: an unspecified listen address is replaced, per
// session, by this machine's address on the route to the target, and a
// loopback one fails the session before anything is sent to the target
// (ErrBadConfig, diagnosis "checkin-address").
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
