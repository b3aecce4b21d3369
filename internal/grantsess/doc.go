// Package grantsess lends an adauth.Grant's SMB session to the other
// packages of this module (deploy copies files on it, remotereg opens its
// named pipes on it) without putting the internal smbconn type in
// adauth's exported API. For a grant that logged on with Kerberos it also
// lends the way to authenticate the launchers' own RPC binds to the same
// computer with Kerberos (Kerberos, KerberosRPC), so that internal/krb
// stays out of the exported API too.
//
// It is the one exception to the module's "no global state" rule: a
// function variable that adauth sets once, in its init, before any Grant
// can exist, and that nothing changes afterwards. It holds no grant, no
// session and no credential; it only knows how to read the session out of
// a Grant. Code outside this module cannot import it.
package grantsess
