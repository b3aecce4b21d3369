// Package checkin is the rendezvous between a console and the applet it
// launched on a target: the console proves that the applet really started,
// and gets a control channel to it.
//
// The console runs a [Server], a TLS listener with an ephemeral self-signed
// certificate by default. For each session it calls [Server.Expect] or
// [Server.ExpectWith], which issues a [Ticket]: the listen address, the
// certificate's SHA-256 fingerprint, a one-time token of 256 random bits,
// and an expiry. The console writes the ticket to a file in the applet's
// own folder on the target ([Ticket.FileContent]) and passes only the
// file's name on the command line ([FileArgs]). The applet reads the file
// and removes it ([ReadTicketFile], or [RegisterFlags] with its own flags),
// then calls [Dial], which pins the fingerprint and presents the token. The
// server compares it in constant time, accepts it once, and hands the
// connection to the waiting session as a [Conn].
//
// Who can see the token: a command line is not a secret on Windows. Every
// local user of the target can read a service's ImagePath (the registry
// under HKLM\...\Services, `sc qc`, System event 7045) and every process's
// command line. A token there would let any local user check in first and
// take the session. So the token travels only in the ticket file, which
// lives in a folder that only administrators and SYSTEM can read, exists
// from just before the launch until the applet starts, and is removed by
// the applet (and by the console's cleanup journal if the applet never
// ran). [Ticket.Args] still writes the older -console, -console-fingerprint
// and -token flags, and RegisterFlags still reads them, for tests and older
// applets; lanconnect's session does not use them.
//
// [ExpectOptions.Peers] restricts a ticket to the target's own addresses: a
// check-in with the right token from anywhere else is refused, and the
// ticket stays valid for the real applet. Refused attempts that concern a
// ticket (its token from a wrong address, or a wrong token from its
// target) are reported through [ExpectOptions.Refused] with the peer's
// address, and logged; tokens are never logged.
//
// After check-in the connection carries newline-delimited JSON: heartbeats
// from the applet, a stop request from the console, and the applet's
// goodbye when it obeys a stop ([Conn.SaidGoodbye]), after which the
// console need not kill its process. When the console closes the
// connection or the connection drops, the applet is expected to exit;
// [AppletConn.Run] returns then.
//
// The package depends on the standard library only, so that a vendor's
// applet can import it cheaply. It does not start or stop processes, it
// does not write the ticket file on the target (the console's deployer
// does), and it does not authenticate the console to the target: that is
// the launchers' business.
package checkin
