// Package cliutil holds what the example programs (lanscan, connect, the
// console) share about their process and terminal:
//
//   - [Safe] makes network-supplied text (NetBIOS and DNS names, domains,
//     OS strings, directory attributes, diagnoses built from them) safe to
//     print on a terminal: a host on the LAN chooses those bytes, and an
//     ANSI escape in a name could rewrite the screen, hide a line or set
//     the window title.
//   - [ChildEnv] is the environment for a child process without the
//     secrets the programs read from theirs (LANCONNECT_PASSWORD).
//   - [BuildApplet] builds examples/applet with the go tool in such an
//     environment.
//
// It does not escape for JSON, HTML or shells: NDJSON output is escaped by
// encoding/json, the console's page by the DOM. It is internal: vendors'
// consoles have their own output.
package cliutil
