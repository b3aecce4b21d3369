package winemu

// dcom.go is the DCOM side of the emulator (MS-DCOM): the object
// exporter (IObjectExporter, on port 135), remote activation
// (IActivation and IRemoteSCMActivator, on port 135), the object table that ORPC calls are
// dispatched through by IPID, and IRemUnknown2 for reference counting.
// The WMI objects themselves are in wmi.go.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"unicode/utf16"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/midl/uuid"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iactivation/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iobjectexporter/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremotescmactivator/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremunknown/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremunknown2/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	"github.com/oiweiwei/go-msrpc/ndr"
)

// COM and DCOM status codes (MS-ERREF 2.1) the emulator returns.
const (
	hrOK                = 0x00000000
	hrNoInterface       = 0x80004002 // E_NOINTERFACE
	hrAccessDenied      = 0x80070005 // E_ACCESSDENIED
	hrClassNotReg       = 0x80040154 // REGDB_E_CLASSNOTREG
	hrInvalidArg        = 0x80070057 // E_INVALIDARG
	rpcEInvalidIPID     = 0x80010113 // RPC_E_INVALID_IPID, as a fault status
	protseqTCP          = 0x07       // ncacn_ip_tcp tower identifier (dcetypes.ProtocolTCP)
	authnWinNT          = 10         // RPC_C_AUTHN_WINNT
	authnGSSNegotiate   = 9          // RPC_C_AUTHN_GSS_NEGOTIATE
	authzNone           = 0xffff     // "default" authorization service
	publicRefsPerObjref = 5
)

// hr32 converts an HRESULT to the signed form the IDL declares.
func hr32(hr uint32) int32 { return int32(hr) }

// comVersion is the COM version the emulator announces (5.7, as Windows
// since XP SP2 does).
func comVersion() *dcom.COMVersion { return &dcom.COMVersion{MajorVersion: 5, MinorVersion: 7} }

// comObject is one exported interface of an object, addressed by IPID.
type comObject struct {
	ipid   *dcom.IPID
	iid    *dcom.IID
	oid    uint64
	refs   int64
	owner  string
	handle dcerpc.ServerHandle
	// what is the object's implementation (for tests and logs).
	kind string
}

// newGUID returns a random (version 4) GUID.
func newGUID() *dtyp.GUID {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return &dtyp.GUID{
		Data1: binary.LittleEndian.Uint32(b[0:]),
		Data2: binary.LittleEndian.Uint16(b[4:]),
		Data3: binary.LittleEndian.Uint16(b[6:]),
		Data4: append([]byte(nil), b[8:]...),
	}
}

func random64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func guidKey(g *dtyp.GUID) string { return g.String() }

// export adds an object to the table and returns its interface pointer
// (an OBJREF_STANDARD with publicRefsPerObjref public references).
func (w *WMI) export(ctx context.Context, kind string, iid *dcom.IID, handle dcerpc.ServerHandle) (*comObject, *dcom.InterfacePointer, error) {
	o := &comObject{
		ipid:   (*dcom.IPID)(newGUID()),
		iid:    iid,
		oid:    random64(),
		refs:   publicRefsPerObjref,
		handle: handle,
		kind:   kind,
	}
	if call, ok := CallFromContext(ctx); ok {
		o.owner = call.User
	}
	w.mu.Lock()
	w.objects[guidKey(o.ipid.GUID())] = o
	w.mu.Unlock()
	ip, err := w.objref(ctx, o)
	if err != nil {
		w.drop(o.ipid)
		return nil, nil, err
	}
	w.srv.Logger.Debug("dcom object exported", "kind", kind, "ipid", o.ipid.GUID().String())
	return o, ip, nil
}

// objref marshals the standard object reference of o.
func (w *WMI) objref(ctx context.Context, o *comObject) (*dcom.InterfacePointer, error) {
	ref := &dcom.ObjectReference{
		Signature: []byte(dcom.ObjectReferenceCustomSignature),
		Flags:     dcom.ObjectReferenceTypeStandard,
		IID:       o.iid,
		ObjectReference: &dcom.ObjectReference_ObjectReference{
			Value: &dcom.ObjectReference_Standard{Standard: &dcom.ObjectReferenceStandard{
				Std: &dcom.StdObjectReference{
					PublicReferencesCount: publicRefsPerObjref,
					OXID:                  w.oxid,
					OID:                   o.oid,
					IPID:                  o.ipid,
				},
				ResolverAddr: w.resolverBindings(ctx),
			}},
		},
	}
	b, err := ndr.Marshal(ref, ndr.Opaque)
	if err != nil {
		return nil, fmt.Errorf("winemu: marshal objref: %w", err)
	}
	return &dcom.InterfacePointer{DataCount: uint32(len(b)), Data: b}, nil
}

// customObjref marshals an OBJREF_CUSTOM carrying data for the given
// unmarshaler class (WMI class objects travel by value this way).
func customObjref(iid *dcom.IID, clsid *dcom.ClassID, data []byte) (*dcom.InterfacePointer, error) {
	return customObjrefSized(iid, clsid, data, uint32(len(data)))
}

// customObjrefSized is customObjref with the OBJREF_CUSTOM size field
// given (Windows announces activation properties 8 bytes larger than the
// BLOB).
func customObjrefSized(iid *dcom.IID, clsid *dcom.ClassID, data []byte, size uint32) (*dcom.InterfacePointer, error) {
	ref := &dcom.ObjectReference{
		Signature: []byte(dcom.ObjectReferenceCustomSignature),
		Flags:     dcom.ObjectReferenceTypeCustom,
		IID:       iid,
		ObjectReference: &dcom.ObjectReference_ObjectReference{
			Value: &dcom.ObjectReference_Custom{Custom: &dcom.ObjectReferenceCustom{
				ClassID:    clsid,
				Size:       size,
				ObjectData: data,
			}},
		},
	}
	b, err := ndr.Marshal(ref, ndr.Opaque)
	if err != nil {
		return nil, fmt.Errorf("winemu: marshal custom objref: %w", err)
	}
	return &dcom.InterfacePointer{DataCount: uint32(len(b)), Data: b}, nil
}

// lookup returns the object with the given IPID if it implements iid.
func (w *WMI) lookup(ipid *uuid.UUID, iid *dcom.IID) (*comObject, bool) {
	if ipid == nil {
		return nil, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.objects[guidKey(dtyp.GUIDFromUUID(ipid))]
	if !ok || (iid != nil && !o.iid.GUID().Equal(iid.GUID())) {
		return nil, false
	}
	return o, true
}

func (w *WMI) drop(ipid *dcom.IPID) {
	w.mu.Lock()
	delete(w.objects, guidKey(ipid.GUID()))
	w.mu.Unlock()
}

// Objects returns the number of DCOM objects currently exported (the
// object exporter's own IRemUnknown2 is not counted). A client that
// releases what it used brings it back to where it was.
func (w *WMI) Objects() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.objects)
}

// dispatcher returns the Interface.Object function for interface iid.
func (w *WMI) dispatcher(iid *dcom.IID) func(context.Context, *uuid.UUID) (dcerpc.ServerHandle, bool) {
	return func(ctx context.Context, ipid *uuid.UUID) (dcerpc.ServerHandle, bool) {
		o, ok := w.lookup(ipid, iid)
		if !ok {
			return nil, false
		}
		return o.handle, true
	}
}

// noObject is the handler for ORPC requests without an IPID.
func noObject(context.Context, int, ndr.Reader) (dcerpc.Operation, error) {
	return nil, FaultError(rpcEInvalidIPID)
}

// dualStringArray encodes string bindings (tower id, address) and
// security bindings (authn service, principal) as a DUALSTRINGARRAY.
func dualStringArray(bindings []string, authn []uint16, principal string) *dcom.DualStringArray {
	var a []uint16
	for _, b := range bindings {
		a = append(a, protseqTCP)
		a = append(a, utf16.Encode([]rune(b))...)
		a = append(a, 0)
	}
	if len(bindings) == 0 {
		a = append(a, 0)
	}
	a = append(a, 0)
	sec := uint16(len(a))
	for _, s := range authn {
		a = append(a, s, authzNone)
		a = append(a, utf16.Encode([]rune(principal))...)
		a = append(a, 0)
	}
	if len(authn) == 0 {
		a = append(a, 0)
	}
	a = append(a, 0)
	return &dcom.DualStringArray{EntriesLength: uint16(len(a)), SecurityOffset: sec, StringArray: a}
}

// localIP is the address the caller reached us on, for string bindings.
func localIP(ctx context.Context) (netip.Addr, bool) {
	call, ok := CallFromContext(ctx)
	if !ok || call.LocalAddr == nil {
		return netip.Addr{}, false
	}
	ap, err := netipAddrPort(call.LocalAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr(), true
}

// resolverBindings are the object resolver's own bindings (port 135 is
// implied): the address the caller used and the computer name.
func (w *WMI) resolverBindings(ctx context.Context) *dcom.DualStringArray {
	var b []string
	if ip, ok := localIP(ctx); ok {
		b = append(b, ip.String())
	}
	b = append(b, w.srv.netbiosName())
	return dualStringArray(b, []uint16{authnWinNT, authnGSSNegotiate}, "")
}

// oxidBindings are the bindings of the object exporter's dynamic
// endpoint, "address[port]", where the WMI interfaces are served. With
// the Blackhole fault on they name a port that accepts connections and
// never answers.
func (w *WMI) oxidBindings(ctx context.Context) (*dcom.DualStringArray, error) {
	ip, ok := localIP(ctx)
	var port uint16
	if w.Faults.FilterDynamic() {
		p, err := w.filteredPort(ip)
		if err != nil {
			return nil, err
		}
		port = p
	} else if w.Faults.Blackhole() {
		p, err := w.blackholePort(ip)
		if err != nil {
			return nil, err
		}
		port = p
	} else {
		ep, found := w.srv.EndpointFor(w.loginSyntax())
		if !found {
			return nil, fmt.Errorf("winemu: no dynamic endpoint serves IWbemLevel1Login")
		}
		port = ep.Addr.Port()
		if !ok {
			ip = ep.Addr.Addr()
		}
	}
	ps := strconv.Itoa(int(port))
	var b []string
	if ip.IsValid() {
		b = append(b, ip.String()+"["+ps+"]")
	}
	b = append(b, w.srv.netbiosName()+"["+ps+"]")
	return dualStringArray(b, []uint16{authnWinNT, authnGSSNegotiate}, ""), nil
}

func (s *Server) netbiosName() string {
	if s.NetBIOSName != "" {
		return s.NetBIOSName
	}
	return "WINEMU"
}

// blackholePort returns the port of a listener on ip that accepts
// connections and never answers, opening it on first use.
func (w *WMI) blackholePort(ip netip.Addr) (uint16, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrServerClosed
	}
	if w.hole != nil {
		return w.holePort, nil
	}
	host := "127.0.0.1"
	if ip.IsValid() {
		host = ip.String()
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("winemu: blackhole listener: %w", err)
	}
	ap, err := netipAddrPort(l.Addr())
	if err != nil {
		l.Close()
		return 0, err
	}
	w.hole, w.holePort = l, ap.Port()
	w.wg.Add(1)
	go w.serveBlackhole(l)
	return w.holePort, nil
}

// filteredPort returns the port of a FilteredPort on ip, opening it on
// first use.
func (w *WMI) filteredPort(ip netip.Addr) (uint16, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrServerClosed
	}
	if w.filtered == nil {
		if !ip.IsValid() {
			ip = netip.MustParseAddr("127.0.0.1")
		}
		p, err := ListenFiltered(ip)
		if err != nil {
			return 0, err
		}
		w.filtered = p
	}
	return w.filtered.Addr.Port(), nil
}

// serveBlackhole accepts connections and holds them, reading and
// discarding, until they or the listener close.
func (w *WMI) serveBlackhole(l net.Listener) {
	defer w.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			c.Close()
			return
		}
		w.holeConns[c] = struct{}{}
		w.mu.Unlock()
		w.srv.Logger.Info("connection held by the blackhole fault", "remote", c.RemoteAddr().String())
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			c.Close()
			w.mu.Lock()
			delete(w.holeConns, c)
			w.mu.Unlock()
		}()
	}
}

// objectExporter implements IObjectExporter (the OXID resolver).
type objectExporter struct {
	iobjectexporter.UnimplementedObjectExporterServer
	w *WMI
}

// ServerAlive2 returns the COM version and the resolver's bindings.
func (e *objectExporter) ServerAlive2(ctx context.Context, req *iobjectexporter.ServerAlive2Request) (*iobjectexporter.ServerAlive2Response, error) {
	return &iobjectexporter.ServerAlive2Response{
		COMVersion:             comVersion(),
		ObjectResolverBindings: e.w.resolverBindings(ctx),
	}, nil
}

// ServerAlive answers a liveness probe.
func (e *objectExporter) ServerAlive(ctx context.Context, req *iobjectexporter.ServerAliveRequest) (*iobjectexporter.ServerAliveResponse, error) {
	return &iobjectexporter.ServerAliveResponse{}, nil
}

// SimplePing keeps a ping set alive; the emulator does not garbage
// collect objects by ping, so it only acknowledges.
func (e *objectExporter) SimplePing(ctx context.Context, req *iobjectexporter.SimplePingRequest) (*iobjectexporter.SimplePingResponse, error) {
	return &iobjectexporter.SimplePingResponse{}, nil
}

// ResolveOxid2 resolves the emulator's single OXID to its bindings.
func (e *objectExporter) ResolveOxid2(ctx context.Context, req *iobjectexporter.ResolveOxid2Request) (*iobjectexporter.ResolveOxid2Response, error) {
	if req.OXID != e.w.oxid {
		return &iobjectexporter.ResolveOxid2Response{ // OR_INVALID_OXID
			OXIDBindings:  dualStringArray(nil, nil, ""),
			RemoteUnknown: &dcom.IPID{Data4: make([]byte, 8)},
			COMVersion:    comVersion(),
			Return:        1910,
		}, nil
	}
	b, err := e.w.oxidBindings(ctx)
	if err != nil {
		return nil, err
	}
	return &iobjectexporter.ResolveOxid2Response{
		OXIDBindings:  b,
		RemoteUnknown: e.w.remUnknown,
		AuthnHint:     uint32(dcerpc.AuthLevelPktIntegrity),
		COMVersion:    comVersion(),
	}, nil
}

// activation is the outcome of one activation of the WMI login class,
// shared by IActivation.RemoteActivation and
// IRemoteSCMActivator.RemoteCreateInstance.
type activation struct {
	hr        uint32 // overall HRESULT; the rest is empty when it fails
	bindings  *dcom.DualStringArray
	authnHint uint32
	results   []int32                  // one per requested IID
	ifaces    []*dcom.InterfacePointer // one per requested IID; empty where results[i] fails
}

// activateLogin creates an IWbemLevel1Login object for an administrator
// calling at packet integrity or above (the DCOM hardening of KB5004442)
// and returns its interface pointers and OXID bindings. It returns an
// error only when the emulator itself fails; refusals are in hr.
func (w *WMI) activateLogin(ctx context.Context, clsid *dtyp.GUID, iids []*dcom.IID) (*activation, error) {
	call, _ := CallFromContext(ctx)
	switch {
	case call == nil || call.AuthLevel < dcerpc.AuthLevelPktIntegrity:
		w.srv.Logger.Info("activation refused: authentication level below packet integrity")
		return &activation{hr: hrAccessDenied}, nil
	case !call.Admin || w.Faults.DenyActivation():
		w.srv.Logger.Info("activation refused: access denied", "user", call.User)
		return &activation{hr: hrAccessDenied}, nil
	case clsid == nil || !clsid.Equal(wmi.Level1LoginClassID.GUID()):
		return &activation{hr: hrClassNotReg}, nil
	case len(iids) == 0:
		return &activation{hr: hrInvalidArg}, nil
	}
	bindings, err := w.oxidBindings(ctx)
	if err != nil {
		return nil, err
	}
	a := &activation{bindings: bindings, authnHint: uint32(call.AuthLevel)}
	found := false
	for _, iid := range iids {
		if iid == nil || !iid.GUID().Equal(w.loginIID().GUID()) {
			a.ifaces = append(a.ifaces, &dcom.InterfacePointer{})
			a.results = append(a.results, hr32(hrNoInterface))
			continue
		}
		_, ip, err := w.export(ctx, "IWbemLevel1Login", w.loginIID(), w.loginHandle())
		if err != nil {
			return nil, err
		}
		found = true
		a.ifaces = append(a.ifaces, ip)
		a.results = append(a.results, 0)
	}
	if !found {
		a.hr = hrNoInterface
	}
	return a, nil
}

// activator implements IActivation.RemoteActivation for the WMI login
// class (CLSID_WbemLevel1Login).
type activator struct {
	iactivation.UnimplementedActivationServer
	w *WMI
}

// RemoteActivation creates an IWbemLevel1Login object (see
// activateLogin) and returns its interface pointer and OXID bindings.
func (a *activator) RemoteActivation(ctx context.Context, req *iactivation.RemoteActivationRequest) (*iactivation.RemoteActivationResponse, error) {
	w := a.w
	act, err := w.activateLogin(ctx, req.ClassID, req.IIDs)
	if err != nil {
		return nil, err
	}
	if act.bindings == nil {
		return &iactivation.RemoteActivationResponse{
			ORPCThat:      &dcom.ORPCThat{},
			OXIDBindings:  dualStringArray(nil, nil, ""),
			RemoteUnknown: &dcom.IPID{Data4: make([]byte, 8)},
			ServerVersion: comVersion(),
			HResult:       hr32(act.hr),
		}, nil
	}
	return &iactivation.RemoteActivationResponse{
		Interfaces:    uint32(len(req.IIDs)),
		ORPCThat:      &dcom.ORPCThat{},
		OXID:          w.oxid,
		OXIDBindings:  act.bindings,
		RemoteUnknown: w.remUnknown,
		AuthnHint:     act.authnHint,
		ServerVersion: comVersion(),
		HResult:       hr32(act.hr),
		InterfaceData: act.ifaces,
		Results:       act.results,
	}, nil
}

// destCtxRemote is the destination context Windows puts in the
// activation properties it returns (MSHCTX_DIFFERENTMACHINE).
const destCtxRemote = 2

// scmActivator implements IRemoteSCMActivator.RemoteCreateInstance
// (MS-DCOM 3.1.2.5.2.3.2), the activation Windows clients and impacket
// use, for the WMI login class. RemoteGetClassObject is not served.
type scmActivator struct {
	iremotescmactivator.UnimplementedRemoteSCMActivatorServer
	w *WMI
}

// RemoteCreateInstance reads the class and the requested interfaces
// from the InstantiationInfoData of the activation properties, activates
// as RemoteActivation does, and returns the result as Windows does: an
// activation properties BLOB holding PropsOutInfo (the interface pointers
// and their HRESULTs) and then ScmReplyInfoData (OXID, OXID bindings,
// IRemUnknown IPID, authentication hint, COM version). A refusal is the
// HRESULT in Return with no properties. It does not honour the
// properties it does not need (ScmRequestInfo's protocol sequences,
// SecurityInfo, LocationInfo, SpecialProperties).
func (s *scmActivator) RemoteCreateInstance(ctx context.Context, req *iremotescmactivator.RemoteCreateInstanceRequest) (*iremotescmactivator.RemoteCreateInstanceResponse, error) {
	w := s.w
	fail := func(hr uint32) (*iremotescmactivator.RemoteCreateInstanceResponse, error) {
		return &iremotescmactivator.RemoteCreateInstanceResponse{ORPCThat: &dcom.ORPCThat{}, Return: hr32(hr)}, nil
	}
	if req.ActPropertiesIn == nil {
		return fail(hrInvalidArg)
	}
	var in dcom.ActivationProperties
	if err := in.Parse(req.ActPropertiesIn); err != nil {
		w.srv.Logger.Info("activation refused: bad activation properties", "err", err)
		return fail(hrInvalidArg)
	}
	// go-msrpc v1.5.2's InstantiationInfoData() looks for the wrong type,
	// so the property is found here.
	var inst *dcom.InstantiationInfoData
	for _, p := range in.Properties {
		if v, ok := p.(*dcom.InstantiationInfoData); ok {
			inst = v
		}
	}
	if inst == nil {
		return fail(hrInvalidArg)
	}
	act, err := w.activateLogin(ctx, inst.ClassID.GUID(), inst.IID)
	if err != nil {
		return nil, err
	}
	if act.bindings == nil {
		return fail(act.hr)
	}
	out := &dcom.ActivationProperties{
		DestinationContext: destCtxRemote,
		Properties: []dcom.ActivationProperty{
			&dcom.PropertiesOutInfo{
				InterfacesCount: uint32(len(inst.IID)),
				IIDs:            inst.IID,
				HResults:        act.results,
				InterfaceData:   act.ifaces,
			},
			&dcom.SCMReplyInfoData{RemoteReply: &dcom.CustomRemoteReplySCMInfo{
				OXID:              w.oxid,
				OXIDBindings:      act.bindings,
				IPIDRemoteUnknown: w.remUnknown,
				AuthnHint:         act.authnHint,
				ServerVersion:     comVersion(),
			}},
		},
	}
	blob, err := out.Marshal()
	if err != nil {
		return nil, fmt.Errorf("winemu: marshal activation properties: %w", err)
	}
	// go-msrpc's ActivationPropertiesOut() labels the OBJREF as
	// ActivationPropertiesIn, so it is built here, as Windows sends it:
	// IID_IActivationPropertiesOut, CLSID_ActivationPropertiesOut and a
	// size 8 more than the BLOB.
	ip, err := customObjrefSized(dcom.ActivationPropertiesOutIID, dcom.ActivationPropertiesOutClassID, blob, uint32(len(blob))+8)
	if err != nil {
		return nil, err
	}
	return &iremotescmactivator.RemoteCreateInstanceResponse{
		ORPCThat:         &dcom.ORPCThat{},
		ActPropertiesOut: ip,
		Return:           hr32(act.hr),
	}, nil
}

// remUnknown implements IRemUnknown2 for the objects of the table.
type remUnknown struct {
	iremunknown2.UnimplementedRemoteUnknown2Server
	w *WMI
}

// RemoteQueryInterface returns further references to an object's
// interface; each object implements one interface (plus IUnknown).
func (r *remUnknown) RemoteQueryInterface(ctx context.Context, req *iremunknown.RemoteQueryInterfaceRequest) (*iremunknown.RemoteQueryInterfaceResponse, error) {
	resp := &iremunknown.RemoteQueryInterfaceResponse{That: &dcom.ORPCThat{}}
	if req.IPID == nil {
		resp.Return = hr32(hrInvalidArg)
		return resp, nil
	}
	o, ok := r.w.lookup(req.IPID.UUID(), nil)
	if !ok {
		return nil, FaultError(rpcEInvalidIPID)
	}
	for _, iid := range req.IIDs {
		res := &dcom.RemoteQueryInterfaceResult{HResult: hr32(hrNoInterface), Std: &dcom.StdObjectReference{IPID: &dcom.IPID{Data4: make([]byte, 8)}}}
		if iid != nil && iid.GUID().Equal(o.iid.GUID()) {
			r.w.mu.Lock()
			o.refs += int64(req.ReferencesCount)
			r.w.mu.Unlock()
			res = &dcom.RemoteQueryInterfaceResult{Std: &dcom.StdObjectReference{
				PublicReferencesCount: req.ReferencesCount, OXID: r.w.oxid, OID: o.oid, IPID: o.ipid,
			}}
		}
		resp.QueryInterfaceResults = append(resp.QueryInterfaceResults, res)
	}
	resp.IIDsCount = uint16(len(resp.QueryInterfaceResults))
	return resp, nil
}

// RemoteAddReference adds references to objects.
func (r *remUnknown) RemoteAddReference(ctx context.Context, req *iremunknown.RemoteAddReferenceRequest) (*iremunknown.RemoteAddReferenceResponse, error) {
	resp := &iremunknown.RemoteAddReferenceResponse{That: &dcom.ORPCThat{}}
	for _, ref := range req.InterfaceReferences {
		hr := int32(0)
		if ref == nil || ref.IPID == nil {
			hr = hr32(hrInvalidArg)
		} else if o, ok := r.w.lookup(ref.IPID.UUID(), nil); ok {
			r.w.mu.Lock()
			o.refs += int64(ref.PublicReferencesCount) + int64(ref.PrivateReferencesCount)
			r.w.mu.Unlock()
		} else {
			hr = hr32(rpcEInvalidIPID)
		}
		resp.Results = append(resp.Results, hr)
	}
	return resp, nil
}

// RemoteRelease drops references; an object whose count reaches zero is
// removed from the table.
func (r *remUnknown) RemoteRelease(ctx context.Context, req *iremunknown.RemoteReleaseRequest) (*iremunknown.RemoteReleaseResponse, error) {
	w := r.w
	for _, ref := range req.InterfaceReferences {
		if ref == nil || ref.IPID == nil {
			continue
		}
		w.mu.Lock()
		k := guidKey(ref.IPID.GUID())
		if o, ok := w.objects[k]; ok {
			o.refs -= int64(ref.PublicReferencesCount) + int64(ref.PrivateReferencesCount)
			if o.refs <= 0 {
				delete(w.objects, k)
				w.srv.Logger.Debug("dcom object released", "kind", o.kind, "ipid", k)
			}
		}
		w.mu.Unlock()
	}
	return &iremunknown.RemoteReleaseResponse{That: &dcom.ORPCThat{}}, nil
}

// RemoteQueryInterface2 is not used by WMI clients.
func (r *remUnknown) RemoteQueryInterface2(ctx context.Context, req *iremunknown2.RemoteQueryInterface2Request) (*iremunknown2.RemoteQueryInterface2Response, error) {
	n := len(req.IIDs)
	resp := &iremunknown2.RemoteQueryInterface2Response{IIDsCount: uint16(n), That: &dcom.ORPCThat{}}
	for range n {
		resp.HResult = append(resp.HResult, hr32(hrNoInterface))
		resp.Interface = append(resp.Interface, &dcom.InterfacePointer{})
	}
	return resp, nil
}

var (
	_ iobjectexporter.ObjectExporterServer         = (*objectExporter)(nil)
	_ iactivation.ActivationServer                 = (*activator)(nil)
	_ iremotescmactivator.RemoteSCMActivatorServer = (*scmActivator)(nil)
	_ iremunknown2.RemoteUnknown2Server            = (*remUnknown)(nil)
)
