// Package krbtest is a Kerberos KDC for tests: it issues real tickets
// (AS and TGS exchanges over TCP, RFC 4120) for the users and service
// principals it is given, on an address the test chooses (loopback), so
// that a Kerberos client (internal/krb.Cache) and a Kerberos acceptor
// (internal/winemu with the KDC's keytab) can authenticate each other in
// one process, with no Samba DC. RPC gives a launcher's test target the
// Kerberos binds of a grant, from an internal/krb.Cache on this KDC.
//
// What it does not do: pre-authentication (it answers the first AS-REQ
// with an AS-REP), PACs, FAST, referrals, renewal, or UDP. It does not
// check the TGS-REQ's authenticator beyond decrypting the TGT, so it is
// no model of a KDC's security; it exists to give the test the keys a real
// domain would. It holds its keys in memory only and never logs them.
package krbtest
