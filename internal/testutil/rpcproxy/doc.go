// Package rpcproxy is a DCE/RPC-aware TCP proxy for tests: a man in the
// middle between an RPC client and a server (winemu) on loopback, that
// forwards every byte unchanged until a rule tells it to alter one PDU
// that the server sends: flip a bit of its sealed stub or of its
// verifier, strip its verifier, replace its body with garbage, or cut the
// stream in the middle of it. It records what it altered and counts the
// requests the client sends on that connection afterwards, so a test can
// prove that the client never acted on the altered data.
//
// It listens on its own address at the same ports as the server, so a
// client that dials the proxy's address reaches the server through it,
// including on the ports the endpoint mapper or the OXID bindings name
// (the SDK's clients always dial the target's own address).
//
// What it does not do: it parses only the common 16-byte header of
// connection-oriented PDUs (C706 12.6) and trusts frag_length; it alters
// server-to-client PDUs only; it never sends traffic anywhere but to the
// server address it is given.
package rpcproxy
