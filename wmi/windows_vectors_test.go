package wmi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/oiweiwei/go-msrpc/msrpc/dcom"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremotescmactivator/v0"
	msrpcwmi "github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemlevel1login/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	"github.com/oiweiwei/go-msrpc/ndr"
)

// guidText writes a GUID as Wireshark shows it.
func guidText(g *dtyp.GUID) string {
	if g == nil {
		return "nil"
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", g.Data1, g.Data2, g.Data3, g.Data4[:2], g.Data4[2:])
}

func windowsStub(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "windows", file))
	if err != nil {
		t.Fatal(err)
	}
	return b[24:] // request/response header; these PDUs carry no auth trailer
}

// TestWindowsRemoteCreateInstance decodes the IRemoteSCMActivator
// RemoteCreateInstance exchange of a Windows client activating
// WbemLevel1Login on Server 2016 (testdata/windows/README.md), at
// authentication level connect, so in plaintext. It checks the facts
// Wireshark reads from the frames, with go-msrpc's generated types, and
// feeds the OXID bindings Windows returned to tcpPort, which must pick the
// dynamic port Windows named. (The SDK activates with
// IActivation.RemoteActivation, whose reply carries the same
// DUALSTRINGARRAY.)
func TestWindowsRemoteCreateInstance(t *testing.T) {
	ctx := context.Background()
	var req iremotescmactivator.RemoteCreateInstanceRequest
	if err := req.UnmarshalNDR(ctx, ndr.NDR20(windowsStub(t, "remote_create_instance_request.bin"))); err != nil {
		t.Fatal(err)
	}
	if req.ORPCThis == nil || req.ORPCThis.Version == nil || req.ORPCThis.Version.MajorVersion != 5 || req.ORPCThis.Version.MinorVersion != 7 {
		t.Errorf("ORPCTHIS %+v", req.ORPCThis)
	}
	var in dcom.ActivationProperties
	if err := in.Parse(req.ActPropertiesIn); err != nil {
		t.Fatal(err)
	}
	// go-msrpc v1.5.2's InstantiationInfoData() looks for the wrong type
	// (InstanceInfoData), so the property is found by hand.
	var inst *dcom.InstantiationInfoData
	for _, p := range in.Properties {
		if v, ok := p.(*dcom.InstantiationInfoData); ok {
			inst = v
		}
	}
	if inst == nil || !inst.ClassID.Equal(msrpcwmi.Level1LoginClassID) || len(inst.IID) != 1 ||
		guidText((*dtyp.GUID)(inst.IID[0])) != guidText((*dtyp.GUID)(iwbemlevel1login.Level1LoginIID)) {
		t.Errorf("instantiation info %+v", inst)
	}

	var resp iremotescmactivator.RemoteCreateInstanceResponse
	if err := resp.UnmarshalNDR(ctx, ndr.NDR20(windowsStub(t, "remote_create_instance_response.bin"))); err != nil {
		t.Fatal(err)
	}
	if resp.Return != 0 || resp.ORPCThat == nil || resp.ORPCThat.Flags != 1 {
		t.Errorf("return 0x%x ORPCTHAT %+v", uint32(resp.Return), resp.ORPCThat)
	}
	var out dcom.ActivationProperties
	if err := out.Parse(resp.ActPropertiesOut); err != nil {
		t.Fatal(err)
	}
	reply := out.SCMReplyInfoData()
	if reply == nil || reply.RemoteReply == nil {
		t.Fatalf("no SCM reply info: %+v", out)
	}
	rr := reply.RemoteReply
	if rr.OXID != 0x053773507f213667 || rr.AuthnHint != 4 || rr.ServerVersion == nil ||
		rr.ServerVersion.MajorVersion != 5 || rr.ServerVersion.MinorVersion != 7 {
		t.Errorf("SCM reply OXID 0x%x authn hint %d version %+v", rr.OXID, rr.AuthnHint, rr.ServerVersion)
	}
	var bindings []string
	for _, sb := range rr.OXIDBindings.GetStringBindings() {
		bindings = append(bindings, fmt.Sprintf("%d:%s", sb.TowerID, sb.NetworkAddr))
	}
	// The named-pipe bindings (tower 0x0F) carry doubled backslashes on
	// the wire, as Wireshark shows them.
	want := `[15:\\\\01566S-WIN16-IR[\\PIPE\\atsvc] 15:\\\\01566S-WIN16-IR[\\pipe\\SessEnvPublicRpc] 7:01566s-win16-ir[49670] 7:172.16.66.36[49670]]`
	if fmt.Sprint(bindings) != want {
		t.Errorf("OXID bindings\n got %v\nwant %s", bindings, want)
	}
	if port, err := tcpPort(rr.OXIDBindings); err != nil || port != 49670 {
		t.Errorf("tcpPort = %d, %v; want 49670", port, err)
	}
	outInfo := out.PropertiesOutInfo()
	if outInfo == nil || outInfo.InterfacesCount != 1 || len(outInfo.HResults) != 1 || outInfo.HResults[0] != 0 || len(outInfo.InterfaceData) != 1 {
		t.Fatalf("properties out %+v", outInfo)
	}
	std := outInfo.InterfaceData[0].GetStandardObjectReference()
	if std == nil || std.Std == nil || std.Std.PublicReferencesCount != 5 || std.Std.OID != 0xf6e3db6450cca71a ||
		guidText((*dtyp.GUID)(std.Std.IPID)) != "00014006-0530-0000-0333-997691ea98ab" {
		t.Errorf("IWbemLevel1Login reference %+v", std)
	}
}
