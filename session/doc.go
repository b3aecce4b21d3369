// Package session is the face of the SDK: it joins discovery,
// authentication, deployment and launch into what a console shows.
//
// A console gets a live, filtered stream of hosts, and for each Connect a
// session that goes Connecting, then Running once the applet has started
// and checked in, or Failed with a diagnosis a technician can act on.
// Sessions are driven by channels; their state changes arrive in order.
//
// The package sees only interfaces: it does not choose concrete discoverers
// or launchers. The examples and the vendor's console do.
package session
