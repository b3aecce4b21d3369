// Package selfcert makes the ephemeral self-signed TLS certificates that
// lanconnect's own listeners present when nobody gave them one: the
// check-in listener (pinned by its fingerprint in the applet's ticket) and
// the example console's HTTPS page (whose fingerprint the console prints).
//
// A certificate lives in memory only: it is never written to disk, and it
// is not trusted by anything until someone pins or accepts its
// fingerprint. The package does not listen, dial or verify anything.
package selfcert
