// Command connect connects to one or many hosts: it authenticates, copies
// the applet, launches it and prints each session's states, progress and,
// on failure, its diagnosis.
//
// Usage:
//
//	LANCONNECT_PASSWORD=... connect [flags] HOST...
//
// A HOST is an IP address or a computer name (NetBIOS broadcast name
// query, then DNS). The main flags are -user, -password-stdin, -applet FILE,
// -method auto|scm|wmi, -console ADDR (the check-in listen address, as the
// targets reach it), -concurrency N, -keep and -json (NDJSON events with
// host, state, step, time, method, error and diagnosis). When credentials
// are refused and standard input is a terminal, it prompts for others.
// It exits 0 only when every host reached Running and was closed cleanly
// (unless -keep). With -check it changes nothing on any host and reports,
// per host, what a connect needs (ports, SMB, credentials, admin, sharing
// model, NTLM level, UAC, Remote Registry, WMI, launch method) and whether
// it is ready (session.Client.Check); it exits 0 when every host is ready.
// docs/connect.md describes the flags and the NDJSON events in full.
//
// It is also the reference for embedding package session: package standard
// wires the concrete pieces (the SMB authenticator, deploy.Copy, a
// deploy.Journal per session, the remotereg and wmi launchers), and this
// command only maps its flags to standard.Options and session.Config.
package main
