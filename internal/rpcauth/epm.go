package rpcauth

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dcetypes"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
)

// ErrNotRegistered is matched (errors.Is) by MapTCP's error when the
// endpoint mapper does not know the interface.
var ErrNotRegistered = errors.New("interface not registered with the endpoint mapper")

// BindingHost writes an address for a string binding (IPv6 literals are
// not bracketed there).
func BindingHost(h string) string {
	if ip := net.ParseIP(h); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			return v4.String()
		}
		return ip.String()
	}
	return h
}

// RequestTower builds the ept_map request tower for syntax over
// ncacn_ip_tcp, NDR 2.0, with port 0 and address 0.0.0.0 (MS-RPCE
// 2.2.1.2.1 / C706 appendix L).
func RequestTower(syntax *dcerpc.SyntaxID) *dcetypes.Tower {
	minor := make([]byte, 2)
	binary.LittleEndian.PutUint16(minor, syntax.IfVersionMinor)
	return dcetypes.FloorsToTower([]*dcetypes.Floor{
		{Protocol: uint8(dcetypes.ProtocolUUID), UUID: syntax.IfUUID, VersionMajor: syntax.IfVersionMajor, Data: minor},
		{Protocol: uint8(dcetypes.ProtocolUUID), UUID: dcerpc.TransferNDR, VersionMajor: 2, Data: []byte{0, 0}},
		{Protocol: uint8(dcetypes.ProtocolRPC_CO), Data: []byte{0, 0}},
		{Protocol: uint8(dcetypes.ProtocolTCP), Data: []byte{0, 0}},
		{Protocol: uint8(dcetypes.ProtocolIP), Data: []byte{0, 0, 0, 0}},
	})
}

// TowerTCPPort returns the TCP port floor of a tower.
func TowerTCPPort(tw *dcetypes.Tower) (int, bool) {
	if tw == nil {
		return 0, false
	}
	for _, f := range tw.Floors() {
		if f != nil && f.Protocol == uint8(dcetypes.ProtocolTCP) && len(f.Data) == 2 {
			if p := int(binary.BigEndian.Uint16(f.Data)); p != 0 {
				return p, true
			}
		}
	}
	return 0, false
}

// MapTCP asks the endpoint mapper at host:epmPort (unauthenticated, as
// Windows clients do) which TCP port serves syntax (ept_map), dialling
// through d (nil means a TCPDialer). It closes its connection before it
// returns. It does not fall back to well-known ports.
func MapTCP(ctx context.Context, d dcerpc.Dialer, host string, epmPort int, syntax *dcerpc.SyntaxID) (int, error) {
	if d == nil {
		d = &TCPDialer{}
	}
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+BindingHost(host)+"["+strconv.Itoa(epmPort)+"]",
		dcerpc.WithDialer(d), dcerpc.WithNewTransport())
	if err != nil {
		return 0, err
	}
	defer cc.Close(context.WithoutCancel(ctx))
	cli, err := epm.NewEpmClient(ctx, cc, dcerpc.WithInsecure())
	if err != nil {
		return 0, fmt.Errorf("bind: %w", err)
	}
	zero := func() *dtyp.GUID { return &dtyp.GUID{Data4: make([]byte, 8)} }
	resp, err := cli.Map(ctx, &epm.MapRequest{
		Object:      zero(),
		MapTower:    RequestTower(syntax),
		EntryHandle: &epm.LookupHandle{UUID: zero()},
		MaxTowers:   4,
	})
	if err != nil {
		return 0, fmt.Errorf("ept_map: %w", err)
	}
	if resp.Status != 0 {
		return 0, fmt.Errorf("ept_map: %w: status 0x%08x", ErrNotRegistered, resp.Status)
	}
	for _, tw := range resp.Towers {
		if port, ok := TowerTCPPort(tw); ok {
			return port, nil
		}
	}
	return 0, fmt.Errorf("ept_map: %w: no TCP tower", ErrNotRegistered)
}
