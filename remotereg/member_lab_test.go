package remotereg

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestLabLocalAccountRPCOnMember: on a Samba domain member, the member's
// own administrator (".\user") reads the registry through winreg over the
// pipe with RPC-level NTLM (sealed), its AUTHENTICATE naming the member
// (COMPUTER\user, the rule of the SMB logon; internal/rpcauth's
// TestLocalAccountDomainOnRPC shows the name is sent). This guards that a
// real member accepts that form. It does not show the old failure:
// Samba's member accepts the empty domain go-msrpc used to send as well
// (measured); Windows members are what the rule is for.
func TestLabLocalAccountRPCOnMember(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{}, Targets: []testlab.TargetSpec{{DomainMember: true}}})
	m := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := smbconn.Dial(ctx, m.Addr.String(), smbconn.Auth{User: m.Admin.User, Password: m.Admin.Password, Local: true}, smbconn.Options{})
	if err != nil {
		t.Fatalf("SMB logon as the member's own administrator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	tgt := target{Addr: m.Addr.String(), Credentials: labCreds{m.Admin}, OpenPipe: func(ctx context.Context, name string) (net.Conn, error) {
		return s.OpenPipe(ctx, name)
	}}
	p, err := fastLauncher(TransportPipe).preflight(ctx, tgt, nil)
	if err != nil {
		t.Fatalf("preflight as .\\%s over the pipe with RPC-level NTLM: %v", m.Admin.User, err)
	}
	if p.SystemRoot == "" {
		t.Fatalf("preflight read nothing: %+v", p)
	}
}
