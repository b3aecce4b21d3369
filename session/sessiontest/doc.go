// Package sessiontest is an in-memory network of fake Windows computers,
// so that a console built on package session can be tested without a lab,
// the way net/http/httptest lets a handler be tested without a network.
//
// A Network holds Computers. It is at once the session's Authenticator
// (it checks accounts against each computer's), its Discoverer (it lists
// the computers), its Deployer (it keeps the copied files in the
// computer's memory and journals them) and a Launcher whose "applet" is a
// goroutine that reads its check-in ticket file and checks in with the
// console's real check-in server over loopback: a session against a
// Network goes through every step of package session, the check-in's TLS
// and token included, and reaches Running. Faults are set per computer
// (a refused logon, an account that is not administrator, a launch that
// fails, an applet that never checks in).
//
// What it does not do: it speaks no SMB, RPC or NetBIOS, and it never
// opens a connection to a computer's address, which is only a label. Use
// loopback labels such as 127.0.2.0/24: the session refuses to hand a
// loopback check-in address (the check-in server Apply configures listens
// on 127.0.0.1) to a target whose address is not loopback. The only
// sockets are the check-in server's and the fake applets' loopback
// connections to it, which is why Apply accepts check-ins from any
// address. Emulator green is not Windows green: test against a lab before
// shipping.
package sessiontest
