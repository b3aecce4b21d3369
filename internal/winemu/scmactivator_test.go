package winemu_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremotescmactivator/v0"
	msrpcwmi "github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemlevel1login/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
	"github.com/oiweiwei/go-msrpc/ndr"
)

// createInstance calls IRemoteSCMActivator.RemoteCreateInstance on port
// 135 with go-msrpc's client, asking for iids of class clsid, as Windows
// clients and impacket's wmiexec activate. A refusal is a response with
// its HRESULT in Return.
func createInstance(ctx context.Context, t *testing.T, e *wmiEnv, opts []dcerpc.Option, clsid *dcom.ClassID, iids ...*dcom.IID) *iremotescmactivator.RemoteCreateInstanceResponse {
	t.Helper()
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+e.ip+"[135]")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(context.Background()) })
	cli, err := iremotescmactivator.NewRemoteSCMActivatorClient(ctx, cc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ver := &dcom.COMVersion{MajorVersion: 5, MinorVersion: 7}
	in := &dcom.ActivationProperties{
		DestinationContext: 2,
		Properties: []dcom.ActivationProperty{
			&dcom.InstantiationInfoData{ClassID: clsid, ClassContext: 0x14, IID: iids, ClientCOMVersion: ver},
			&dcom.SCMRequestInfoData{RemoteRequest: &dcom.CustomRemoteRequestSCMInfo{ClientImpLevel: 2, RequestedProtocolSequences: []uint16{7}}},
		},
	}
	ip, err := in.ActivationPropertiesIn()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cli.RemoteCreateInstance(ctx, &iremotescmactivator.RemoteCreateInstanceRequest{
		ORPCThis:        &dcom.ORPCThis{Version: ver},
		ActPropertiesIn: ip,
	})
	if err != nil && (resp == nil || resp.Return == 0) {
		t.Fatal(err) // a transport failure, not a refusal
	}
	return resp
}

// activationShape is what fixes the structure of an activation reply:
// the OBJREF's IID and unmarshaler CLSID, its size field beyond the
// BLOB, the destination context and the classes of the properties in
// order.
func activationShape(t *testing.T, ip *dcom.InterfacePointer) (string, *dcom.ActivationProperties) {
	t.Helper()
	if ip == nil {
		t.Fatal("no activation properties")
	}
	var ref dcom.ObjectReference
	if err := ndr.Unmarshal(ip.Data, &ref, ndr.Opaque); err != nil {
		t.Fatal(err)
	}
	c := ip.GetCustomObjectReference()
	if c == nil {
		t.Fatalf("not an OBJREF_CUSTOM: flags %d", ref.Flags)
	}
	var props dcom.ActivationProperties
	if err := props.Parse(ip); err != nil {
		t.Fatal(err)
	}
	shape := "iid=" + ref.IID.GUID().String() + " clsid=" + c.ClassID.GUID().String() +
		" size-blob=" + strconv.Itoa(int(c.Size)-len(c.ObjectData)) + " destctx=" + strconv.Itoa(int(props.DestinationContext)) + " props="
	for _, p := range props.Properties {
		shape += p.ActivationPropertyClassID().GUID().String() + ","
	}
	return shape, &props
}

// TestWMIRemoteCreateInstance activates WbemLevel1Login through
// IRemoteSCMActivator, checks that the reply has the structure of Server
// 2016's reply to the same request (wmi/testdata/windows) and carries
// what RemoteActivation returns, and logs in to root\cimv2 on the
// dynamic port it names. Refusals come back as the HRESULT.
func TestWMIRemoteCreateInstance(t *testing.T) {
	checkLeaks(t)
	e := startWMIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The endpoint mapper knows the interface, on port 135.
	if ep, ok := e.srv.EndpointFor(iremotescmactivator.RemoteSCMActivatorSyntaxV0_0); !ok || ep.Addr.Port() != 135 {
		t.Fatalf("IRemoteSCMActivator endpoint = %+v, %v", ep, ok)
	}
	ecc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+e.ip+"[135]")
	if err != nil {
		t.Fatal(err)
	}
	defer ecc.Close(context.Background())
	ecli, err := epm.NewEpmClient(ctx, ecc, dcerpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	// winemu serves every interface on its dynamic port too, so it lists
	// that tower besides 135.
	m, err := ecli.Map(ctx, &epm.MapRequest{MapTower: towerOf(iremotescmactivator.RemoteSCMActivatorSyntaxV0_0), MaxTowers: 4})
	if err != nil || m.Status != 0 || len(m.Towers) == 0 {
		t.Fatalf("ept_map(IRemoteSCMActivator) = %v %+v", err, m)
	}
	var ports []string
	for _, tw := range m.Towers {
		ports = append(ports, tw.Binding().StringBinding.Endpoint)
	}
	if !slices.Contains(ports, "135") {
		t.Fatalf("ept_map(IRemoteSCMActivator) ports %v, want 135 among them", ports)
	}

	resp := createInstance(ctx, t, e, sealAs(adminUser, adminPass), msrpcwmi.Level1LoginClassID, iwbemlevel1login.Level1LoginIID)
	if resp.Return != 0 {
		t.Fatalf("RemoteCreateInstance HRESULT 0x%08x", uint32(resp.Return))
	}
	got, out := activationShape(t, resp.ActPropertiesOut)

	b, err := os.ReadFile("../../wmi/testdata/windows/remote_create_instance_response.bin")
	if err != nil {
		t.Fatal(err)
	}
	var win iremotescmactivator.RemoteCreateInstanceResponse
	if err := win.UnmarshalNDR(ctx, ndr.NDR20(b[24:])); err != nil {
		t.Fatal(err)
	}
	want, _ := activationShape(t, win.ActPropertiesOut)
	if got != want {
		t.Fatalf("activation properties differ from Windows'\n got %s\nwant %s", got, want)
	}

	po, reply := out.PropertiesOutInfo(), out.SCMReplyInfoData()
	if po == nil || reply == nil || reply.RemoteReply == nil {
		t.Fatalf("properties %+v", out.Properties)
	}
	rr := reply.RemoteReply
	if po.InterfacesCount != 1 || len(po.HResults) != 1 || po.HResults[0] != 0 || len(po.InterfaceData) != 1 ||
		!po.IIDs[0].GUID().Equal(iwbemlevel1login.Level1LoginIID.GUID()) {
		t.Fatalf("PropsOutInfo %+v", po)
	}
	if rr.OXID == 0 || rr.AuthnHint != uint32(dcerpc.AuthLevelPktPrivacy) || rr.ServerVersion.MajorVersion != 5 || rr.ServerVersion.MinorVersion != 7 || rr.IPIDRemoteUnknown == nil {
		t.Fatalf("ScmReplyInfo %+v", rr)
	}
	std := po.InterfaceData[0].GetStandardObjectReference()
	if std == nil || std.Std.OXID != rr.OXID || std.Std.PublicReferencesCount != 5 {
		t.Fatalf("IWbemLevel1Login reference %+v", std)
	}
	ep, _ := e.srv.EndpointFor(iwbemlevel1login.Level1LoginSyntaxV0_0)
	wantBinding := "ncacn_ip_tcp:" + e.ip + "[" + strconv.Itoa(int(ep.Addr.Port())) + "]"
	if bs := rr.OXIDBindings.GetStringBindings(); len(bs) == 0 || bs[0].String() != wantBinding {
		t.Fatalf("OXID bindings %+v, want %s first", bs, wantBinding)
	}
	if n := e.wmi.Objects(); n != 1 {
		t.Fatalf("%d objects after one activation", n)
	}

	// The interface pointer works on the port the bindings name.
	wcc, err := dcerpc.Dial(ctx, e.ip, rr.OXIDBindings.EndpointsByProtocol("ncacn_ip_tcp")...)
	if err != nil {
		t.Fatal(err)
	}
	defer wcc.Close(context.Background())
	l1, err := iwbemlevel1login.NewLevel1LoginClient(ctx, wcc, append(sealAs(adminUser, adminPass), dcom.WithIPID(po.InterfaceData[0].IPID()))...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l1.NTLMLogin(ctx, &iwbemlevel1login.NTLMLoginRequest{This: &dcom.ORPCThis{Version: rr.ServerVersion}, NetworkResource: `\\TARGET1\ROOT\CIMV2`})
	if err != nil || r.Return != 0 || r.Namespace == nil {
		t.Fatalf("NTLMLogin: %v %+v", err, r)
	}

	// Refusals: a non-administrator, and a class that is not registered.
	if r := createInstance(ctx, t, e, sealAs(plainUser, plainPass), msrpcwmi.Level1LoginClassID, iwbemlevel1login.Level1LoginIID); uint32(r.Return) != 0x80070005 {
		t.Fatalf("RemoteCreateInstance by a non-administrator: HRESULT 0x%08x", uint32(r.Return))
	}
	other := &dcom.ClassID{Data1: 0x12345678, Data4: make([]byte, 8)}
	if r := createInstance(ctx, t, e, sealAs(adminUser, adminPass), other, iwbemlevel1login.Level1LoginIID); uint32(r.Return) != 0x80040154 {
		t.Fatalf("RemoteCreateInstance of another class: HRESULT 0x%08x", uint32(r.Return))
	}
}
