// Command lanscan streams the computers it finds on the LAN, as a table
// that grows as hosts are found or as NDJSON.
//
// It is an example of the discovery side of lanconnect, not a port scanner:
// it only asks the NetBIOS name service and the sources named on its
// command line.
package main
