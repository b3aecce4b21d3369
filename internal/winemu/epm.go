package winemu

// epm.go is the endpoint mapper (MS-RPCE 2.2.1.2, C706 appendix O):
// ept_map and ept_lookup over the endpoints the server listens on.

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dcetypes"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
)

const (
	eptNotRegistered = 0x16c9a0d6 // EPT_S_NOT_REGISTERED
	eptMatchByIf     = 1
	eptMatchByBoth   = 3
)

type endpointMapper struct {
	epm.UnimplementedEpmServer
	srv *Server
}

func netipAddrPort(a net.Addr) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return ap, err
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// towerIP is the address the tower announces: the listener's own address,
// or the address the client reached us on when the listener is unspecified.
func towerIP(ctx context.Context, ep Endpoint) netip.Addr {
	ip := ep.Addr.Addr().Unmap()
	if ip.IsUnspecified() || !ip.Is4() {
		if call, ok := CallFromContext(ctx); ok && call.LocalAddr != nil {
			if ap, err := netipAddrPort(call.LocalAddr); err == nil && ap.Addr().Is4() {
				return ap.Addr()
			}
		}
		return netip.IPv4Unspecified()
	}
	return ip
}

// tower builds the five-floor ncacn_ip_tcp tower of an endpoint.
func tower(ctx context.Context, ep Endpoint) *dcetypes.Tower {
	ip := towerIP(ctx, ep).As4()
	return dcetypes.FloorsToTower([]*dcetypes.Floor{
		{
			Protocol:     uint8(dcetypes.ProtocolUUID),
			UUID:         ep.Syntax.IfUUID,
			VersionMajor: ep.Syntax.IfVersionMajor,
			Data:         binary.LittleEndian.AppendUint16(nil, ep.Syntax.IfVersionMinor),
		},
		{
			Protocol:     uint8(dcetypes.ProtocolUUID),
			UUID:         dcerpc.TransferNDR,
			VersionMajor: 2,
			Data:         []byte{0, 0},
		},
		{Protocol: uint8(dcetypes.ProtocolRPC_CO), Data: []byte{0, 0}},
		{Protocol: uint8(dcetypes.ProtocolTCP), Data: binary.BigEndian.AppendUint16(nil, ep.Addr.Port())},
		{Protocol: uint8(dcetypes.ProtocolIP), Data: ip[:]},
	})
}

func zeroGUID() *dtyp.GUID { return &dtyp.GUID{Data4: make([]byte, 8)} }

func nullLookupHandle() *epm.LookupHandle {
	return &epm.LookupHandle{Attributes: 0, UUID: zeroGUID()}
}

// matches reports whether an endpoint serves the interface asked for.
func matches(ep Endpoint, id *dcetypes.InterfaceID, versOption uint32) bool {
	if id == nil || id.UUID == nil {
		return true
	}
	if !ep.Syntax.IfUUID.Equals(id.UUID.UUID()) {
		return false
	}
	maj, mnr := ep.Syntax.IfVersionMajor, ep.Syntax.IfVersionMinor
	switch versOption {
	case 1: // RPC_C_VERS_ALL
		return true
	case 2: // RPC_C_VERS_COMPATIBLE
		return maj == id.VersMajor && mnr >= id.VersMinor
	case 4: // RPC_C_VERS_MAJOR_ONLY
		return maj == id.VersMajor
	case 5: // RPC_C_VERS_UPTO
		return maj < id.VersMajor || (maj == id.VersMajor && mnr <= id.VersMinor)
	default: // RPC_C_VERS_EXACT
		return maj == id.VersMajor && mnr == id.VersMinor
	}
}

// Map implements ept_map: it resolves the interface in the first floor of
// the client's tower to the TCP endpoints that serve it.
func (m *endpointMapper) Map(ctx context.Context, req *epm.MapRequest) (*epm.MapResponse, error) {
	resp := &epm.MapResponse{EntryHandle: nullLookupHandle(), Status: eptNotRegistered}
	if req.MapTower == nil {
		return resp, nil
	}
	floors := req.MapTower.Floors()
	if len(floors) < 1 || floors[0].UUID == nil {
		return resp, nil
	}
	id := &dcetypes.InterfaceID{
		UUID:      dtyp.GUIDFromUUID(floors[0].UUID),
		VersMajor: floors[0].VersionMajor,
		VersMinor: floors[0].VersionMinor(),
	}
	max := int(req.MaxTowers)
	for _, ep := range m.srv.Endpoints() {
		if len(resp.Towers) >= max {
			break
		}
		if matches(ep, id, 2) {
			resp.Towers = append(resp.Towers, tower(ctx, ep))
		}
	}
	resp.TowersLength = uint32(len(resp.Towers))
	if len(resp.Towers) > 0 {
		resp.Status = 0
	}
	return resp, nil
}

// Lookup implements ept_lookup (which go-msrpc's endpoint-mapper client
// uses). All matching entries are returned in one call with a null
// handle.
func (m *endpointMapper) Lookup(ctx context.Context, req *epm.LookupRequest) (*epm.LookupResponse, error) {
	resp := &epm.LookupResponse{EntryHandle: nullLookupHandle(), Status: eptNotRegistered, MaxEntries: req.MaxEntries}
	var id *dcetypes.InterfaceID
	if req.InquiryType == eptMatchByIf || req.InquiryType == eptMatchByBoth {
		id = req.InterfaceID
	}
	for _, ep := range m.srv.Endpoints() {
		if len(resp.Entries) >= int(req.MaxEntries) {
			break
		}
		if matches(ep, id, req.VersOption) {
			resp.Entries = append(resp.Entries, &epm.Entry{Object: zeroGUID(), Tower: tower(ctx, ep), Annotation: ep.Name})
		}
	}
	resp.EntriesLength = uint32(len(resp.Entries))
	if len(resp.Entries) > 0 {
		resp.Status = 0
	}
	return resp, nil
}

// LookupHandleFree implements ept_lookup_handle_free; handles are always
// null here.
func (m *endpointMapper) LookupHandleFree(ctx context.Context, req *epm.LookupHandleFreeRequest) (*epm.LookupHandleFreeResponse, error) {
	return &epm.LookupHandleFreeResponse{EntryHandle: nullLookupHandle()}, nil
}
