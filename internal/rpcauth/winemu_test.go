package rpcauth

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/go-msrpc/ssp/gssapi"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

// TestOptionsOverTCPAgainstWinemu runs real sealed svcctl calls with
// Options and TCPDialer against winemu on a loopback address, and shows
// the integrity check in the DCE/RPC path: a flipped bit in a sealed
// response fails the call with ErrIntegrity, and the connection stays
// failed.
func TestOptionsOverTCPAgainstWinemu(t *testing.T) {
	host := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(250), 2+rand.IntN(250))
	pass := fmt.Sprintf("P-%d", rand.Int64())
	srv := &winemu.Server{Users: map[string]winemu.User{"admin": {Password: pass, Admin: true}}, Root: t.TempDir(), EPMPort: 1135}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx, host); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ep, ok := srv.EndpointFor(svcctl.SvcctlSyntaxV2_0)
	if !ok {
		t.Fatal("winemu serves no svcctl endpoint")
	}
	dial := func(t *testing.T, level Level) svcctl.SvcctlClient {
		t.Helper()
		opts, err := Options(fakeCreds{account: `.\admin`, password: pass}, level)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := dcerpc.Dial(ctx, fmt.Sprintf("ncacn_ip_tcp:%s[%d]", host, ep.Addr.Port()), dcerpc.WithDialer(&TCPDialer{}), dcerpc.WithNewTransport())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close(context.Background()) })
		cli, err := svcctl.NewSvcctlClient(ctx, cc, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return cli
	}
	open := func(cli svcctl.SvcctlClient) error {
		resp, err := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: 1})
		if err == nil && resp.Return != 0 {
			err = fmt.Errorf("return %d", resp.Return)
		}
		return err
	}
	for _, lvl := range []Level{Privacy, Integrity} {
		t.Run(lvl.String()+" genuine", func(t *testing.T) {
			cli := dial(t, lvl)
			for range 3 {
				if err := open(cli); err != nil {
					t.Fatal(err)
				}
			}
			// The credential lived in the connection's own context: go-msrpc's
			// process-global store is still empty.
			if c := gssapi.GetCredential(context.Background(), "", nil, gssapi.InitiateOnly); c != nil {
				t.Fatalf("a credential reached go-msrpc's global store: %T", c)
			}
		})
	}
	// A response larger than one fragment (the client's 4096-byte maximum):
	// every fragment is sealed and verified on its own, with its own
	// sequence number.
	t.Run("privacy multi-fragment response", func(t *testing.T) {
		cli := dial(t, Privacy)
		scm, err := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: 3})
		if err != nil || scm.Return != 0 {
			t.Fatalf("open scm: %v %d", err, scm.Return)
		}
		long := `"C:\Windows\Temp\a.exe"`
		for len(long) < 3500 {
			long += fmt.Sprintf(" -arg%d", len(long))
		}
		cr, err := cli.CreateServiceW(ctx, &svcctl.CreateServiceWRequest{ServiceManager: scm.SCM, ServiceName: "lc-long",
			DesiredAccess: 0xF01FF, ServiceType: 0x10, StartType: 3, ErrorControl: 1, BinaryPathName: long})
		if err != nil || cr.Return != 0 {
			t.Fatalf("create: %v", err)
		}
		for range 3 {
			qc, err := cli.QueryServiceConfigW(ctx, &svcctl.QueryServiceConfigWRequest{Service: cr.Service, BufferLength: 8192})
			if err != nil || qc.Return != 0 {
				t.Fatalf("query config: %v", err)
			}
			if qc.ServiceConfig.BinaryPathName != long {
				t.Fatalf("binary path came back changed (%d bytes)", len(qc.ServiceConfig.BinaryPathName))
			}
		}
		if _, err := cli.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: cr.Service}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("privacy tampered", func(t *testing.T) {
		cli := dial(t, Privacy)
		if err := open(cli); err != nil {
			t.Fatal(err)
		}
		srv.Faults.SetTamper(winemu.TamperSpec{Count: 1, OpNum: -1, Interface: "svcctl", SealedOnly: true, StubOffset: 3, Bit: 0})
		if err := open(cli); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("err = %v, want ErrIntegrity", err)
		}
		if n := len(srv.Faults.Tampered()); n != 1 {
			t.Fatalf("%d tampered responses", n)
		}
		if err := open(cli); err == nil {
			t.Fatal("the connection kept working after an integrity failure")
		}
	})
}
