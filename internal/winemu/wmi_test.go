package winemu_test

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iactivation/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iobjectexporter/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/oaut"
	msrpcwmi "github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemlevel1login/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemservices/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmio"
	"github.com/oiweiwei/go-msrpc/ndr"
	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/credential"

	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// wmiEnv is a server with DCOM/WMI on a fresh loopback address.
type wmiEnv struct {
	srv  *winemu.Server
	wmi  *winemu.WMI
	ip   string
	logs *testutil.LockedBuffer
}

func startWMIServer(t *testing.T) *wmiEnv {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "Temp"), 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LockedBuffer{}
	srv := &winemu.Server{
		Users: map[string]winemu.User{
			adminUser: {Password: adminPass, Admin: true},
			plainUser: {Password: plainPass},
		},
		Root:        root,
		NetBIOSName: "TARGET1",
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	w, err := winemu.EnableWMI(srv, winemu.OSInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := winemu.EnableWMI(srv, winemu.OSInfo{}); !errors.Is(err, winemu.ErrDuplicateInterface) {
		t.Fatal("EnableWMI twice on one server succeeded")
	}
	ip := testutil.LoopbackIP()
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx, ip); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		srv.Close()
		w.Close()
		if t.Failed() {
			t.Logf("winemu log:\n%s", logs.String())
		}
	})
	return &wmiEnv{srv: srv, wmi: w, ip: ip, logs: logs}
}

func sealAs(user, pass string) []dcerpc.Option {
	return []dcerpc.Option{dcerpc.WithSeal(), dcerpc.WithMechanism(ssp.NTLM), dcerpc.WithCredentials(credential.NewFromPassword(user, pass))}
}

// activate runs ServerAlive2 and RemoteActivation on port 135 with go-msrpc's
// client at the given security and returns the response.
func activate(ctx context.Context, t *testing.T, e *wmiEnv, opts []dcerpc.Option) (*iactivation.RemoteActivationResponse, *dcom.COMVersion) {
	t.Helper()
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+e.ip+"[135]")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(context.Background()) })
	ox, err := iobjectexporter.NewObjectExporterClient(ctx, cc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	alive, err := ox.ServerAlive2(ctx, &iobjectexporter.ServerAlive2Request{})
	if err != nil {
		t.Fatal(err)
	}
	if v := alive.COMVersion; v.MajorVersion != 5 || v.MinorVersion != 7 {
		t.Fatalf("COM version %+v", v)
	}
	bs := alive.ObjectResolverBindings.GetStringBindings()
	if len(bs) == 0 || bs[0].NetworkAddr != e.ip {
		t.Fatalf("resolver bindings %+v", bs)
	}
	act, err := iactivation.NewActivationClient(ctx, cc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := act.RemoteActivation(ctx, &iactivation.RemoteActivationRequest{
		ORPCThis:                   &dcom.ORPCThis{Version: alive.COMVersion},
		ClassID:                    msrpcwmi.Level1LoginClassID.GUID(),
		IIDs:                       []*dcom.IID{iwbemlevel1login.Level1LoginIID},
		RequestedProtocolSequences: []uint16{7},
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp, alive.COMVersion
}

// login activates, dials the OXID's endpoint and logs in to root\cimv2.
func login(ctx context.Context, t *testing.T, e *wmiEnv) (iwbemservices.ServicesClient, *dcom.COMVersion) {
	t.Helper()
	act, ver := activate(ctx, t, e, sealAs(adminUser, adminPass))
	if act.HResult != 0 {
		t.Fatalf("activation HRESULT 0x%08x", uint32(act.HResult))
	}
	wcc, err := dcerpc.Dial(ctx, e.ip, act.OXIDBindings.EndpointsByProtocol("ncacn_ip_tcp")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wcc.Close(context.Background()) })
	l1, err := iwbemlevel1login.NewLevel1LoginClient(ctx, wcc, append(sealAs(adminUser, adminPass), dcom.WithIPID(act.InterfaceData[0].IPID()))...)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := l1.NTLMLogin(ctx, &iwbemlevel1login.NTLMLoginRequest{This: &dcom.ORPCThis{Version: ver}, NetworkResource: "//./root/default"}); err == nil || uint32(r.Return) != 0x8004100E {
		t.Fatalf("login to root/default: %v", err)
	}
	r, err := l1.NTLMLogin(ctx, &iwbemlevel1login.NTLMLoginRequest{This: &dcom.ORPCThis{Version: ver}, NetworkResource: `\\TARGET1\ROOT\CIMV2`})
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := iwbemservices.NewServicesClient(ctx, wcc, append(sealAs(adminUser, adminPass), dcom.WithIPID(r.Namespace.InterfacePointer().IPID()))...)
	if err != nil {
		t.Fatal(err)
	}
	return svcs, ver
}

func decode(t *testing.T, co *msrpcwmi.ClassObject) *wmio.Object {
	t.Helper()
	ref := &dcom.ObjectReference{}
	if err := ndr.Unmarshal(co.Data, ref, ndr.Opaque); err != nil {
		t.Fatal(err)
	}
	c, ok := ref.ObjectReference.GetValue().(*dcom.ObjectReferenceCustom)
	if !ok {
		t.Fatalf("not a custom objref: %T", ref.ObjectReference.GetValue())
	}
	if !c.ClassID.GUID().Equal(msrpcwmi.ClassObjectUnmarshalClassID.GUID()) {
		t.Fatalf("unmarshaler class %v", c.ClassID)
	}
	obj, err := wmio.Unmarshal(c.ObjectData)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestWMIActivationRules(t *testing.T) {
	checkLeaks(t)
	e := startWMIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// KB5004442: below packet integrity, activation is refused.
	connect := []dcerpc.Option{dcerpc.WithConnect(), dcerpc.WithMechanism(ssp.NTLM), dcerpc.WithCredentials(credential.NewFromPassword(adminUser, adminPass))}
	if r, _ := activate(ctx, t, e, connect); uint32(r.HResult) != 0x80070005 {
		t.Fatalf("activation at connect level: HRESULT 0x%08x", uint32(r.HResult))
	}
	if r, _ := activate(ctx, t, e, sealAs(plainUser, plainPass)); uint32(r.HResult) != 0x80070005 {
		t.Fatalf("activation by a non-administrator: HRESULT 0x%08x", uint32(r.HResult))
	}
	r, _ := activate(ctx, t, e, sealAs(adminUser, adminPass))
	if r.HResult != 0 || r.Results[0] != 0 || r.OXID == 0 {
		t.Fatalf("activation: %+v", r)
	}
	ep, _ := e.srv.EndpointFor(iwbemlevel1login.Level1LoginSyntaxV0_0)
	want := "ncacn_ip_tcp:" + e.ip + "[" + strconv.Itoa(int(ep.Addr.Port())) + "]"
	if eps := r.OXIDBindings.GetStringBindings(); len(eps) == 0 || eps[0].String() != want {
		t.Fatalf("OXID bindings %+v, want %s first", eps, want)
	}
	if n := e.wmi.Objects(); n != 1 {
		t.Fatalf("%d objects after one activation", n)
	}
	// The OXID resolves to the same bindings; an unknown one does not.
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+e.ip+"[135]")
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close(context.Background())
	ox, err := iobjectexporter.NewObjectExporterClient(ctx, cc, sealAs(adminUser, adminPass)...)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ox.ResolveOxid2(ctx, &iobjectexporter.ResolveOxid2Request{OXID: r.OXID, RequestedProtocolSequences: []uint16{7}})
	if err != nil || res.Return != 0 || res.OXIDBindings.GetStringBindings()[0].String() != want {
		t.Fatalf("ResolveOxid2: %v %+v", err, res)
	}
	if res, err := ox.ResolveOxid2(ctx, &iobjectexporter.ResolveOxid2Request{OXID: r.OXID + 1, RequestedProtocolSequences: []uint16{7}}); res == nil || res.Return != 1910 {
		t.Fatalf("ResolveOxid2 of an unknown OXID: %v %+v", err, res)
	}
}

func TestWMIServices(t *testing.T) {
	checkLeaks(t)
	e := startWMIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svcs, ver := login(ctx, t, e)
	this := &dcom.ORPCThis{Version: ver}

	if r, err := svcs.GetObject(ctx, &iwbemservices.GetObjectRequest{This: this, ObjectPath: &oaut.String{Data: "Win32_Nope"}}); err == nil || uint32(r.Return) != 0x80041002 {
		t.Fatalf("GetObject of a missing class: %v", err)
	}
	for q, want := range map[string]uint32{
		"SELECT FROM":                        0x80041017,
		"SELECT * FROM Win32_Nope":           0x80041010,
		"DELETE * FROM Win32_Process":        0x80041017,
		"SELECT Name FROM Win32_Process X Y": 0x80041017,
	} {
		r, err := svcs.ExecQuery(ctx, &iwbemservices.ExecQueryRequest{This: this, QueryLanguage: &oaut.String{Data: "WQL"}, Query: &oaut.String{Data: q}})
		if err == nil || uint32(r.Return) != want {
			t.Errorf("%q: %v (0x%08x), want 0x%08x", q, err, uint32(r.Return), want)
		}
	}

	// Create with a path outside C:\Windows, an empty command line and a
	// missing file give the documented ReturnValues.
	g, err := svcs.GetObject(ctx, &iwbemservices.GetObjectRequest{This: this, ObjectPath: &oaut.String{Data: "Win32_Process"}})
	if err != nil {
		t.Fatal(err)
	}
	cls := decode(t, g.Object)
	in, _, err := cls.Method("Create")
	if err != nil {
		t.Fatal(err)
	}
	for cmd, want := range map[string]uint32{`C:\Users\x.exe`: 9, "  ": 21, `C:\Windows\Temp\missing.exe -x`: 9} {
		params, err := in.New(wmio.Values{"CommandLine": cmd})
		if err != nil {
			t.Fatal(err)
		}
		b, err := wmio.Marshal(params)
		if err != nil {
			t.Fatal(err)
		}
		ref := &dcom.ObjectReference{
			Signature: []byte(dcom.ObjectReferenceCustomSignature), Flags: dcom.ObjectReferenceTypeCustom, IID: &dcom.IID{Data4: make([]byte, 8)},
			ObjectReference: &dcom.ObjectReference_ObjectReference{Value: &dcom.ObjectReference_Custom{Custom: &dcom.ObjectReferenceCustom{
				ClassID: msrpcwmi.ClassObjectUnmarshalClassID, ObjectData: b, Size: uint32(len(b)),
			}}},
		}
		data, err := ndr.Marshal(ref, ndr.Opaque)
		if err != nil {
			t.Fatal(err)
		}
		r, err := svcs.ExecMethod(ctx, &iwbemservices.ExecMethodRequest{This: this, ObjectPath: &oaut.String{Data: "Win32_Process"},
			MethodName: &oaut.String{Data: "Create"}, InParams: &msrpcwmi.ClassObject{Data: data, DataCount: uint32(len(data))}})
		if err != nil {
			t.Fatal(err)
		}
		if got := decode(t, r.OutParams).Values()["ReturnValue"]; got != want {
			t.Errorf("Create(%q) ReturnValue %v, want %d", cmd, got, want)
		}
	}
	if p := e.wmi.Processes(); len(p) != 0 {
		t.Fatalf("processes started: %+v", p)
	}

	// Win32_Process lists this very process, by ProcessId and in full.
	me := strconv.Itoa(os.Getpid())
	for _, q := range []string{"SELECT * FROM Win32_Process WHERE ProcessId = " + me, "select Name from win32_process"} {
		r, err := svcs.ExecQuery(ctx, &iwbemservices.ExecQueryRequest{This: this, QueryLanguage: &oaut.String{Data: "WQL"}, Query: &oaut.String{Data: q}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Enum == nil || r.Enum.InterfacePointer().IPID() == nil {
			t.Fatal("no enumerator")
		}
	}
	// In-parameters that are not a CIM object passed by value are
	// refused with WBEM_E_INVALID_PARAMETER.
	junk := []byte("MEOW\x04\x00\x00\x00not an object reference at all")
	if r, err := svcs.ExecMethod(ctx, &iwbemservices.ExecMethodRequest{This: this, ObjectPath: &oaut.String{Data: "Win32_Process"},
		MethodName: &oaut.String{Data: "Create"}, InParams: &msrpcwmi.ClassObject{Data: junk, DataCount: uint32(len(junk))}}); err == nil || r == nil || uint32(r.Return) != 0x80041008 {
		t.Fatalf("Create with junk in-parameters: %v", err)
	}

	// A call on an IPID that was never exported is faulted (go-msrpc then closes the
	// connection, so this comes last).
	if _, err := svcs.GetObject(ctx, &iwbemservices.GetObjectRequest{This: this, ObjectPath: &oaut.String{Data: "Win32_Process"}},
		dcom.WithIPID(&dcom.IPID{Data1: 1, Data4: make([]byte, 8)})); err == nil {
		t.Fatal("call on an unknown IPID succeeded")
	}
}

// TestWMIClassLayout compares the Win32_Process class the emulator serves
// with the encoding of the real class captured from Windows Server 2019
// that go-msrpc ships as an example (read from the module cache, not
// copied): the Create and Terminate signatures must match in names and
// types, and every property the emulator serves must exist in the real
// class with the same type.
func TestWMIClassLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/oiweiwei/go-msrpc").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	dump, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "examples", "data", "wmio_win32_process.dump"))
	if err != nil {
		t.Skipf("no reference dump: %v", err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(dump)))
	if err != nil {
		t.Fatal(err)
	}
	real, err := wmio.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}

	e := startWMIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svcs, ver := login(ctx, t, e)
	g, err := svcs.GetObject(ctx, &iwbemservices.GetObjectRequest{This: &dcom.ORPCThis{Version: ver}, ObjectPath: &oaut.String{Data: "Win32_Process"}})
	if err != nil {
		t.Fatal(err)
	}
	ours := decode(t, g.Object)
	if ours.Class.CurrentClass.Name != real.Class.CurrentClass.Name {
		t.Fatalf("class %q, real %q", ours.Class.CurrentClass.Name, real.Class.CurrentClass.Name)
	}
	types := func(c wmio.Class) map[string]wmio.CIMType {
		m := map[string]wmio.CIMType{}
		for _, p := range c.Properties {
			m[p.Name] = p.Value.Type
		}
		return m
	}
	realProps := types(real.Class.CurrentClass)
	for name, typ := range types(ours.Class.CurrentClass) {
		if rt, ok := realProps[name]; !ok || rt != typ {
			t.Errorf("property %s: %v, real class %v (present %v)", name, typ, rt, ok)
		}
	}
	for _, m := range []string{"Create", "Terminate"} {
		oi, oo, err := ours.Method(m)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		ri, ro, err := real.Method(m)
		if err != nil {
			t.Fatalf("real %s: %v", m, err)
		}
		for _, pair := range [][2]*wmio.Object{{oi, ri}, {oo, ro}} {
			got, want := types(pair[0].Class.CurrentClass), types(pair[1].Class.CurrentClass)
			if len(got) != len(want) {
				t.Errorf("%s signature %v, real %v", m, got, want)
			}
			for n, ty := range want {
				if got[n] != ty {
					t.Errorf("%s parameter %s: %v, real %v", m, n, got[n], ty)
				}
			}
		}
	}
}
