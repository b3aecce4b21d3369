// Package deploy puts the vendor's applet on a target and defines how it is
// started and cleaned up.
//
// It owns the Applet (name, version, content, SHA-256), Copy (write to a
// temporary name under ADMIN$, verify, rename into place), PutFile (a small
// secret file such as the check-in ticket, written into the applet's
// existing folder and journaled before it is created), the Launcher
// interface with its LaunchSpec, the ExitNotifier a Handle implements when
// it must not kill an applet that exited by itself, and the Journal that records every file,
// directory, service, registry key and service-state change made on a
// target so that it can be undone in reverse order, even by a later process.
//
// It does not authenticate (it takes a grant from package adauth) and it
// contains no launcher: those are in packages remotereg and wmi.
package deploy
