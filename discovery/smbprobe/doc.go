// Package smbprobe names Windows computers without logging on to them: it
// sends an SMB2 NEGOTIATE and one SESSION_SETUP carrying an anonymous NTLM
// NEGOTIATE to TCP 445, and reads what the server discloses before any
// credentials are checked.
//
// The NEGOTIATE response gives the dialect and whether signing is
// required; the NTLM CHALLENGE in the SESSION_SETUP response gives the
// NetBIOS and DNS computer names, the domain, the DNS domain and tree, and
// the OS version (major, minor, build). That is enough to list hosts where
// NetBIOS over TCP/IP is turned off, and to enrich hosts found by other
// sources.
//
// The probe sends no user name, password or hash, completes no logon and
// closes the connection after the challenge. It does not speak SMBv1. The
// codec parses only what it needs, never panics and never reads past its
// input; malformed answers give errors that match ErrMalformed.
package smbprobe
