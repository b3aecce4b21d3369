// Package testutil holds small helpers that several packages' tests share:
// a loopback address per test, so that each in-process emulator can own
// port 135 on an address of its own, a concurrency-safe log buffer, and
// Consts, which lists the constants of a type from Go source.
//
// It is imported by tests only. It sends no traffic and starts nothing.
package testutil
