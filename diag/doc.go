// Package diag is the one vocabulary in which lanconnect explains a
// failure to a technician: a Diagnosis (a stable Code, a Summary of what
// happened and a Fix), the Diagnoser interface of errors that carry one,
// every Code that any package of the SDK produces, and the names and
// meanings of the Windows status codes (Win32 errors, NTSTATUS, HRESULT)
// that can reach a technician.
//
// Codes are a contract: consoles switch on them, and examples/connect
// writes them in its NDJSON "code" field. docs/diagnoses.md lists every
// code with its summary and fix; a test of this package fails when the
// two disagree.
//
// The package has no dependencies beyond the standard library and does no
// I/O. It does not classify errors itself: each package that talks to a
// target (adauth, deploy, remotereg, wmi, session) builds its own
// diagnoses with these codes.
package diag
