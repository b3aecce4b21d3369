package diag

// Code identifies a diagnosis. Its string is stable: consoles may map it
// to their own help pages and examples/connect prints it in NDJSON.
type Code string

// Diagnosis explains a failure in terms a technician can act on. Code is
// stable and machine-readable; Summary says what happened and Fix what to
// change, both in plain English. A Diagnosis never contains a password or
// hash.
//
// The zero value means "no diagnosis".
type Diagnosis struct {
	Code    Code   `json:"code"`
	Summary string `json:"summary"`
	Fix     string `json:"fix,omitempty"`
}

// IsZero reports whether d is the zero Diagnosis.
func (d Diagnosis) IsZero() bool { return d == Diagnosis{} }

// String returns the summary, then " Fix: " and the fix when there is
// one ("Fix: ..." alone when there is no summary). This is the form
// examples/connect prints and writes in its NDJSON "diagnosis" field.
func (d Diagnosis) String() string {
	if d.Fix == "" {
		return d.Summary
	}
	if d.Summary == "" {
		return "Fix: " + d.Fix
	}
	return d.Summary + " Fix: " + d.Fix
}

// Diagnoser is implemented by errors that carry their own diagnosis
// (*adauth.AuthError, *deploy.LaunchError, *deploy.CopyError,
// *session.Error, and any error of a console's own steps). Diagnose
// returns the zero Diagnosis when the error has none.
type Diagnoser interface {
	Diagnose() Diagnosis
}
