package grantsess

import (
	"context"

	"github.com/oiweiwei/go-msrpc/dcerpc"

	"github.com/lanconnect/lanconnect/internal/smbconn"
)

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

// KerberosRPC returns go-msrpc options that authenticate one DCE/RPC
// bind with Kerberos to the grant's computer, for the service class
// ("host" for svcctl and winreg, "RPCSS" for DCOM activation), sealed or
// signed; the tickets come from the grant's ticket cache.
type KerberosRPC func(ctx context.Context, class string, seal bool) ([]dcerpc.Option, error)

// kerberosOf reads a Kerberos grant's KerberosRPC; set by
// RegisterKerberos.
var kerberosOf func(g any) KerberosRPC

// RegisterKerberos installs adauth's accessor of a grant's KerberosRPC.
// Only adauth's init calls it.
func RegisterKerberos(f func(g any) KerberosRPC) { kerberosOf = f }

// Kerberos returns g's KerberosRPC when g (an *adauth.Grant) logged on
// with Kerberos, and nil otherwise: its RPC connections of their own
// must then use Kerberos too (a domain that refuses NTLM refuses it on
// RPC as well).
func Kerberos(g any) KerberosRPC {
	if kerberosOf == nil || g == nil {
		return nil
	}
	return kerberosOf(g)
}
