// Package vendor holds three small programs written as a vendor would
// write them, against lanconnect's public packages alone (a test in
// internal/apicheck fails if any of them imports an internal package):
//
//   - console: a minimal text console: discovery (NetBIOS), a filter, a
//     per-Connect credential prompt, and a session per matching host.
//   - direct: authenticate, copy and launch through the Service Control
//     Manager without package session, then stop and undo the journal.
//   - plugin: a vendor's own discoverer (a host list file) and its own
//     launcher (an audit-recording wrapper that journals its own artifact
//     and undoes it), plugged into a session through standard.Options.
//
// They are examples, not products: see examples/connect and
// examples/console for the full command-line tools.
package vendor
