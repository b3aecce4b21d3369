package winemu_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/midl/uuid"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

// statusEPM is a stand-in interface implementation: its
// ept_lookup_handle_free answers with a fixed status and records the
// caller's object UUID.
type statusEPM struct {
	epm.UnimplementedEpmServer
	status uint32
	seen   chan *uuid.UUID
}

func (s statusEPM) LookupHandleFree(ctx context.Context, _ *epm.LookupHandleFreeRequest) (*epm.LookupHandleFreeResponse, error) {
	call, _ := winemu.CallFromContext(ctx)
	s.seen <- call.Object
	return &epm.LookupHandleFreeResponse{EntryHandle: &epm.LookupHandle{UUID: &dtyp.GUID{Data4: make([]byte, 8)}}, Status: s.status}, nil
}

// TestExtraInterfaceWithObjectDispatch registers an interface the way the
// DCOM work will (UUID/version plus an object-UUID hook), serves it on an
// extra dynamic port, and checks dispatch by object UUID and rundown.
func TestExtraInterfaceWithObjectDispatch(t *testing.T) {
	checkLeaks(t)
	syntax := dcerpc.SyntaxID{IfUUID: uuid.MustParse("6c1f2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b"), IfVersionMajor: 0}
	known := uuid.MustParse("00000000-1111-2222-3333-444455556666")
	seen := make(chan *uuid.UUID, 4)
	rundown := make(chan uint64, 4)
	srv := &winemu.Server{}
	defer srv.Close()
	err := srv.Register(winemu.Interface{
		Name:   "ITest",
		Syntax: syntax,
		Handle: epm.NewEpmServerHandle(statusEPM{status: 1, seen: seen}),
		Object: func(_ context.Context, obj *uuid.UUID) (dcerpc.ServerHandle, bool) {
			if obj.Equals(known) {
				return epm.NewEpmServerHandle(statusEPM{status: 0xa, seen: seen}), true
			}
			return nil, false
		},
		Rundown: func(id uint64) { rundown <- id },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ap, err := srv.ListenExtra(ctx, "127.0.0.1", &syntax)
	if err != nil {
		t.Fatal(err)
	}
	if ep, ok := srv.EndpointFor(&syntax); !ok || ep.Addr != ap {
		t.Fatalf("EndpointFor = %+v %v, want %s", ep, ok, ap)
	}
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:127.0.0.1["+strconv.Itoa(int(ap.Port()))+"]")
	if err != nil {
		t.Fatal(err)
	}
	bound, err := cc.Bind(ctx, dcerpc.WithAbstractSyntax(&syntax), dcerpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	cli, err := epm.NewEpmClient(ctx, cc, dcerpc.WithNoBind(bound), dcerpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	req := &epm.LookupHandleFreeRequest{EntryHandle: &epm.LookupHandle{UUID: &dtyp.GUID{Data4: make([]byte, 8)}}}

	resp, _ := cli.LookupHandleFree(ctx, req)
	if resp == nil || resp.Status != 1 || <-seen != nil {
		t.Fatalf("interface handler: %+v", resp)
	}
	resp, _ = cli.LookupHandleFree(ctx, req, dcerpc.WithObjectUUID(known))
	if resp == nil || resp.Status != 0xa {
		t.Fatalf("object handler: %+v", resp)
	}
	if obj := <-seen; obj == nil || !obj.Equals(known) {
		t.Fatalf("handler saw object %v", obj)
	}
	_, err = cli.LookupHandleFree(ctx, req, dcerpc.WithObjectUUID(uuid.MustParse("99999999-1111-2222-3333-444455556666")))
	if code, ok := faultCode(err); !ok || code != 0x1c010003 {
		t.Fatalf("unknown object: %v (code %#x)", err, code)
	}
	cc.Close(ctx)
	select {
	case <-rundown:
	case <-time.After(5 * time.Second):
		t.Fatal("no rundown after the connection closed")
	}
}
