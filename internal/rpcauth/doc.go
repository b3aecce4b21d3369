// Package rpcauth builds the DCE/RPC security for one go-msrpc connection:
// its own NTLM credential and security context, sealed (PKT_PRIVACY) by
// default, and with the response integrity check that go-msrpc v1.5.2
// leaves out at PKT_PRIVACY restored.
//
// # The hazard it closes
//
// go-msrpc's dcerpc.Security.Unwrap calls gssapi.UnwrapEx for sealed PDUs
// and discards its result, and the NTLM mechanism's UnwrapEx computes the
// expected signature without comparing it with the one received. RC4 is
// malleable, so a flipped bit in a sealed response reaches the caller as
// corrupted data. At PKT_INTEGRITY go-msrpc does verify.
//
// Options returns go-msrpc client options whose NTLM mechanism is wrapped:
// after the inner mechanism decrypts a sealed PDU, the wrapper recomputes
// the NTLMSSP signature independently (MS-NLMP 3.4.4.2: HMAC-MD5 over the
// sequence number and the decrypted message with the peer's signing key,
// the checksum RC4-encrypted with the peer's sealing handle when key
// exchange was negotiated), keeps its own sequence number per PDU
// fragment, and compares in constant time. A mismatch fails the call with
// an error that matches ErrIntegrity, and every later PDU on that security
// context fails too, since the RC4 streams can no longer be trusted.
//
// # Local accounts
//
// A local account (".\user") logs on as COMPUTER\user: the verifying
// mechanism (VerifyingNTLM.Local, set by Options) puts the computer's
// NetBIOS name from the server's CHALLENGE into the AUTHENTICATE's domain,
// by the same rule as the SMB logon (smbconn.ChallengeInfo.LocalAccountDomain).
// go-msrpc would send the empty domain, which a domain member looks up in
// its domain.
//
// # What it does not do
//
// It never uses go-msrpc's process-global credential or mechanism stores
// (gssapi.AddCredential, gssapi.AddMechanism): every call of Options makes
// a security context that holds its own credential. It speaks NTLM only
// (no SPNEGO or Kerberos), and it refuses to seal without NTLMv2 extended
// session security, which all our peers negotiate. It does not dial SMB:
// DialPipe runs go-msrpc over a named pipe that the caller opens on an
// existing SMB session.
package rpcauth
