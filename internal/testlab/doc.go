// Package testlab starts real peers for tests, benchmarks and the demo:
// Samba smbd and nmbd as Windows-like targets and a Samba AD DC, each in a
// network namespace of its own on a private bridge.
//
// Everything it creates lives under one temporary directory and is stopped
// by PID and namespace name, including after a failed or interrupted run.
// It never touches the system's own Samba configuration and never sends
// traffic outside the namespaces and bridge it creates.
package testlab
