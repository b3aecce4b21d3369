// Command applet is a sample applet: it checks in with the console that
// launched it, reports a heartbeat, and exits when the console tells it to
// stop or the connection drops.
//
// Usage:
//
//	applet -console HOST:PORT -console-fingerprint HEX -token TOKEN [-heartbeat D] [-log FILE]
//
// The launcher writes those three flags from a checkin.Ticket. On Windows
// the applet notices when the Service Control Manager started it and then
// runs as a service (golang.org/x/sys/windows/svc), reporting
// SERVICE_RUNNING before it checks in; started by WMI or by hand it runs as
// a plain process. In the lab it is the Linux build that the targets run.
//
// Exit status: 0 when the console asked it to stop, 1 when check-in failed
// or the connection dropped, 2 for bad arguments.
package main
