package adauth

import (
	"fmt"

	"github.com/lanconnect/lanconnect/internal/krb"
)

// RPCLevel is the DCE/RPC protection that the launchers (remotereg, wmi)
// ask for on each RPC connection they authenticate with a grant's
// credentials. The zero value, RPCPrivacy, is the default and the one to
// use; the others exist for servers that cannot do better.
type RPCLevel int

const (
	// RPCPrivacy seals every PDU (PKT_PRIVACY) and verifies the NTLMSSP
	// signature or Kerberos token of every response; a response that fails the check fails
	// the call with ErrIntegrity. It is the zero value: MS-RRP and MS-SCMR
	// recommend it, and DCOM hardening (KB5004442) requires at least
	// integrity.
	RPCPrivacy RPCLevel = iota
	// RPCIntegrity signs every PDU (PKT_INTEGRITY); responses are
	// verified too.
	RPCIntegrity
	// RPCNone binds without RPC authentication. Use it only on a
	// transport that is itself protected, such as a signed SMB session's
	// named pipe; the WMI launcher refuses it.
	RPCNone
)

// String returns the MS-RPCE name of the level: "PKT_PRIVACY",
// "PKT_INTEGRITY" or "NONE".
func (l RPCLevel) String() string {
	switch l {
	case RPCPrivacy:
		return "PKT_PRIVACY"
	case RPCIntegrity:
		return "PKT_INTEGRITY"
	case RPCNone:
		return "NONE"
	}
	return fmt.Sprintf("RPCLevel(%d)", int(l))
}

// ErrIntegrity is matched (errors.Is) by the error of an RPC call whose
// sealed or signed response, or any later PDU on the same security
// context, failed its check (the NTLMSSP signature, or the Kerberos
// token): the data was altered on the way, the verifier is missing or
// malformed, or the peer does not hold the session keys. The launchers'
// errors match it (their diagnosis code is "rpc-integrity"), with NTLM and
// with Kerberos.
var ErrIntegrity = krb.ErrIntegrity
