// Package deploy puts the vendor's applet on a target and defines how it is
// started and cleaned up.
//
// It owns the Applet (name, version, content, SHA-256), Copy (create a new
// applet folder under ADMIN$ with create-only semantics, refusing one that
// exists or one that is not admin-only; write to a temporary name there,
// verify, rename into place), the Launcher interface with its LaunchSpec,
// and the Journal that records every file, directory, service, registry key
// and service-state change made on a target, before the call that makes
// it, so that it can be undone in reverse order, even by a later process.
// A Scope (FileScope for Copy's files) restricts undo to what lanconnect
// makes: Journal.UndoWithin refuses a journal that names anything else.
//
// It does not authenticate (it takes a grant from package adauth) and it
// contains no launcher: those are in packages remotereg and wmi.
package deploy
