// Package netbios implements the NetBIOS name service (NBNS, RFC 1001 and
// RFC 1002) as far as a console needs it to find Windows computers: the
// codec, a client and a scanner.
//
// The codec encodes and decodes first-level names, node status (NBSTAT)
// requests and responses, and name query requests and responses. It is
// modelled on golang.org/x/net/dns/dnsmessage: parsing never panics and
// never reads past its input; malformed packets give typed errors.
//
// The client asks one address for its name table, or resolves a name by
// unicast or broadcast. The scanner sweeps CIDRs, ranges and addresses
// through one UDP socket at a paced rate and streams answers as they arrive;
// once nodes have answered, it gives up on silent addresses after a wait
// adapted to their round trips (at least a quarter of the timeout) rather
// than the whole timeout.
// Identify reads a computer's name, workgroup and roles from its name
// table, and an adapter makes the scanner a discovery.Discoverer.
// Package nbnstest has a fake responder on loopback addresses for tests.
//
// The package speaks only UDP 137. It does not use SMBv1, the browser
// service or "net view", and it does not register or defend names.
package netbios
