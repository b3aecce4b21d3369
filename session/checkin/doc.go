// Package checkin is the rendezvous between a console and the applet it
// launched on a target: the console proves that the applet really started,
// and gets a control channel to it.
//
// The console runs a [Server], a TLS listener with an ephemeral self-signed
// certificate by default. For each session it calls [Server.Expect], which
// issues a [Ticket]: the listen address, the certificate's SHA-256
// fingerprint and a one-time token of 256 random bits that expires. The
// launcher passes the ticket to the applet on its command line
// ([Ticket.Args]). The applet calls [Dial], which pins the fingerprint and
// presents the token. The server compares it in constant time, accepts it
// once, and hands the connection to the waiting session as a [Conn].
//
// After check-in the connection carries newline-delimited JSON: heartbeats
// from the applet, and a stop request from the console. When the console
// closes the connection or the connection drops, the applet is expected to
// exit; [AppletConn.Run] returns then.
//
// The package depends on the standard library only, so that a vendor's
// applet can import it cheaply. It does not start or stop processes and it
// does not authenticate the console to the target: that is the launchers'
// business. A token on a command line is visible to local administrators of
// the target for as long as the applet runs; it is useless after check-in
// (one use) and after it expires.
package checkin
