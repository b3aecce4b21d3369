package krb

import (
	"errors"

	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// ErrNTLMBlocked means the target refused an NTLM logon
// (STATUS_NTLM_BLOCKED): NTLM is disabled there or for the account, and
// only Kerberos can log on.
var ErrNTLMBlocked = errors.New("krb: the computer refuses NTLM; use Kerberos")

// DiagnoseNTLM returns an *Error matching ErrNTLMBlocked, with the advice
// to use Kerberos with the computer's DNS name, when err is an SMB logon
// that the target refused with STATUS_NTLM_BLOCKED; otherwise it returns
// err unchanged. It does not retry anything.
func DiagnoseNTLM(err error) error {
	if err == nil || !errors.Is(err, smbconn.StatusNTLMBlocked) {
		return err
	}
	return &Error{Op: "NTLM logon", Kind: ErrNTLMBlocked, Err: err}
}
