// Command applet is a sample applet: it checks in with the console that
// launched it, reports a heartbeat, and exits when the console tells it to
// stop or the connection drops.
//
// Usage:
//
//	applet -ticket-file NAME [-heartbeat D] [-log FILE]
//	applet -console HOST:PORT -console-fingerprint HEX -token TOKEN [-heartbeat D] [-log FILE]
//
// The console writes the check-in ticket (console address, certificate
// fingerprint, one-time token, expiry) to the file NAME in the applet's own
// folder, and passes only that name: command lines are readable by every
// local user of the target. The applet reads the file (relative to its own
// executable) and removes it before it checks in (checkin.RegisterFlags).
// The second form, with the ticket on the command line, is still accepted
// for tests and older consoles. On Windows
// the applet notices when the Service Control Manager started it and then
// runs as a service (golang.org/x/sys/windows/svc), reporting
// SERVICE_RUNNING before it checks in; started by WMI or by hand it runs as
// a plain process. In the lab it is the Linux build that the targets run:
// when winemu's emulated SCM starts it, it writes "running" on the
// descriptor named by WINEMU_SERVICE_STATUS_FD before it checks in (the
// emulated SCM fails StartService with 1053 otherwise, as Windows does);
// without that variable it just runs.
//
// When the console asks it to stop it says goodbye and exits, so that the
// console does not kill its process by ID.
//
// Exit status: 0 when the console asked it to stop, 1 when check-in failed
// or the connection dropped, 2 for bad arguments.
package main
