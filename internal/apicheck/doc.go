// Package apicheck records the exported API of lanconnect's public
// packages, as the Go project's api/ files do: one line per exported
// declaration, sorted, in api/lanconnect.txt at the module's root. Its
// test fails when the exported API differs from that file, so that every
// change to it is a decision someone made on purpose (and wrote in
// CHANGELOG.md), not a side effect. Run
//
//	go test ./internal/apicheck -update
//
// to rewrite the file after such a decision.
//
// Lines describe declarations as the source writes them (types are not
// resolved, parameter names are left out): a changed signature, a new
// or removed field, method, constant or variable changes a line. It reads
// only the packages listed in Public; it does not look at internal/,
// examples/ or test files, and it does not judge whether a change is
// compatible.
package apicheck
