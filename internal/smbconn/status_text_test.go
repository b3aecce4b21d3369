package smbconn

import (
	"testing"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/testutil"
)

// TestEveryNTStatusExplained parses this package's NTStatus constants and
// checks that diag names and explains each, as the technician reads them
// in errors and diagnoses.
func TestEveryNTStatusExplained(t *testing.T) {
	consts := testutil.Consts(t, "NTStatus", "errors.go")
	if len(consts) < 30 {
		t.Fatalf("found only %d NTStatus constants", len(consts))
	}
	for _, c := range consts {
		sym, meaning := diag.NTStatus(uint32(c.Num))
		if meaning == "" || sym != NTStatus(c.Num).String() {
			t.Errorf("%s (0x%08X): diag.NTStatus gives %q, %q", c.Name, c.Num, sym, meaning)
		}
	}
	if got := StatusLogonFailure.Error(); got != "smb server: STATUS_LOGON_FAILURE (0xC000006D): the user name or password is wrong" {
		t.Errorf("got %q", got)
	}
}
