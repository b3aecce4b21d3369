// Command lanscan streams the computers it finds on the LAN, as a table
// that shows each computer once (on a terminal its row is redrawn in place
// as facts arrive; piped, it is printed once its sources have answered) or
// as NDJSON, one object per update.
//
//	lanscan [-filter EXPR] [-timeout D] [-rate N] [-retries N] [-json] [-interactive] [TARGET...]
//
// A TARGET is an IPv4 address, a CIDR or a range (10.0.0.5-10.0.0.40).
// With no TARGET it sweeps the IPv4 subnets of the local interfaces (each
// capped at a /22) and sends broadcast name queries on them. The flags, the
// NDJSON schema and the exit statuses are described in docs/lanscan.md.
//
// It is an example of the discovery side of lanconnect, not a port scanner:
// it only asks the NetBIOS name service and the sources named on its
// command line. Sources are listed in sources.go; adding one is a flag set
// and a function that returns its discovery.Discoverer values.
package main
