package adauth

import (
	"context"

	"github.com/lanconnect/lanconnect/discovery"
)

// LocalAdminRequest is what a LocalAdminSource is told when a session
// needs a computer's own local administrator credentials.
type LocalAdminRequest struct {
	// Name is the computer's name as the console knows it (from the
	// technician or from discovery: its NetBIOS name, else its DNS
	// name), never a name the computer claimed for itself. Credentials
	// returned for Name go only to a computer whose NTLM challenge
	// announces Name (WithExpectedName).
	Name string
	// Addr is the address the session connects to.
	Addr string
	// Host is the computer as discovery found it; Host.DN, when set, is
	// its computer object.
	Host discovery.Host
	// Reason is why they are asked for: the refusal of the technician's
	// credentials (an *AuthError for which ShouldPrompt is true), or nil
	// when the console asks for them first.
	Reason error
}

// LocalAdminSource supplies a computer's own local administrator
// credentials, for example its LAPS password read from Active Directory
// (package laps). Package session consults it (session.Config.LocalAdmin)
// when the technician's credentials are refused on a computer as a logon
// failure or as not an administrator, before any prompt.
//
// The credentials are a local account (".\name"), so they authenticate
// with NTLM only: Kerberos cannot be used for them, and NTLM must be
// allowed on the computer for local accounts.
//
// LocalAdmin returns the credentials and the name of their source, for
// the session's record (for example "laps-windows"). Its errors should
// carry a diag.Diagnosis (diag.Diagnoser) and must never contain the
// secret. It is called from many sessions at once.
type LocalAdminSource interface {
	LocalAdmin(ctx context.Context, req LocalAdminRequest) (creds Credentials, source string, err error)
}
