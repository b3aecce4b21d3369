// Package deploy puts the vendor's applet on a target and defines how it is
// started and cleaned up.
//
// It owns the Applet (name, version, content, SHA-256), Copy (create a new
// applet folder under ADMIN$ with create-only semantics, refusing one that
// exists or one that is not admin-only; write to a temporary name there,
// verify, rename into place), PutFile (a small secret file such as the
// check-in ticket, written into the applet's folder and journaled before it
// is created), the Launcher interface with its LaunchSpec, the ExitNotifier
// a Handle implements when it must not kill an applet that exited by
// itself, and the Journal that records every file, directory, service,
// registry key and service-state change made on a target, before the call
// that makes it, so that it can be undone in reverse order, even by a later
// process. A Scope (FileScope for Copy's files) restricts undo to what
// lanconnect makes: Journal.UndoWithin refuses a journal that names
// anything else.
//
// # Plugin model
//
// deploy holds the one target-side model that package session drives and
// that launchers, preflighters and deployers implement, lanconnect's own
// (remotereg, wmi, standard.Deployer) and a vendor's alike:
//
//   - Target: the session ID, the discovery.Host, the address dialled, the
//     adauth.Grant, the session's *Journal and, once copied, the applet's
//     path;
//   - Launcher (Name, Launch on a *Target), Preflighter with its Preflight
//     findings, Deployer and FileDeployer;
//   - Checker: a launcher that can tell without launching or changing
//     anything whether it would work (session.Client.Check), with the
//     Probe of what it learned;
//   - Undoer: a step that records artifacts of its own kinds in
//     Target.Journal returns their undo functions from Undoers(grant). The
//     session undoes its journal with FileUndoers and the Undoers of every
//     configured step that implements Undoer; a console recovering a
//     persisted journal after a crash does the same with a new grant.
//
// # Memory
//
// An Applet made with AppletFromFile or AppletFromBytes holds its bytes
// once, read-only, and every session that deploys it sends slices of that
// one copy (no per-copy buffer, no second hash); the bytes sent are the
// bytes hashed. What a Copy still allocates while it runs is go-smb2's
// packet per WRITE in flight (Parallel × ChunkSize); a WriteLimit shared
// by the Copies of a console (standard.Apply shares one) bounds those for
// all of them together.
// # Applet variants per architecture
//
// An Applet may name the Windows architecture it is built for (Arch:
// Arch386, ArchAMD64, ArchARM64; empty for a default). Applets is a set of
// such variants; Applets.Choose picks the one for a computer's reported
// architecture (NormalizeArch reads PROCESSOR_ARCHITECTURE and WMI's
// OSArchitecture): native, then the default, then one that Windows
// emulates there. When none fits it returns an *ArchError
// (ErrNoAppletForArch, diagnosis "applet-arch-unsupported") instead of
// letting the launch fail with ERROR_BAD_EXE_FORMAT (193). A
// VariantDeployer exposes its variants so that the session learns the
// architecture (Target.Arch) and checks the choice before deploying.
//
// A journal file is trusted input: undoing it deletes what it names, so a
// journal directory must be writable by the console only, and a recovery
// should restrict it with a Scope (Journal.UndoWithin).
//
// It does not authenticate (it takes a grant from package adauth) and it
// contains no launcher: those are in packages remotereg and wmi.
package deploy
