package grantsess

import "github.com/lanconnect/lanconnect/internal/smbconn"

// get reads the session out of an *adauth.Grant; set by Register.
var get func(g any) *smbconn.Session

// Register installs adauth's accessor. Only adauth's init calls it.
func Register(f func(g any) *smbconn.Session) { get = f }

// Of returns the SMB session of g, an *adauth.Grant, or nil for a nil or
// zero Grant (one built by hand, without a logon) and for anything else.
// The caller borrows the session: the Grant still owns it and closes it.
func Of(g any) *smbconn.Session {
	if get == nil || g == nil {
		return nil
	}
	return get(g)
}
