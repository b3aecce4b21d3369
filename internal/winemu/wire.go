package winemu

// wire.go holds the connection-oriented PDU framing (MS-RPCE 2.2.2, C706
// chapter 12): the common header, the request/response/fault bodies, and
// the bind family, which is decoded and encoded with go-msrpc's own PDU
// types so that the wire format is the library's.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/midl/uuid"
	"github.com/oiweiwei/go-msrpc/ndr"
)

const (
	headerSize      = 16
	requestHdrSize  = 24 // common header + alloc_hint, p_cont_id, opnum
	responseHdrSize = 24 // common header + alloc_hint, p_cont_id, cancel_count, reserved
	faultSize       = 32
	secTrailerSize  = 8
	ntlmSigSize     = 16

	// maxFrag is the largest fragment the server sends or accepts.
	maxFrag = 5840
	// maxCallSize bounds the reassembled stub data of one request.
	maxCallSize = 16 << 20
)

// Fault status codes (MS-RPCE 2.2.2.11 and C706 appendix E).
const (
	statusAccessDenied    = 0x00000005
	statusOpRangeError    = 0x1c010002 // nca_op_rng_error
	statusUnknownIf       = 0x1c010003 // nca_unk_if
	statusProtoError      = 0x1c01000b // nca_proto_error
	statusContextMismatch = 0x1c00001a // nca_s_fault_context_mismatch
	statusBadStubData     = 0x000006f7 // RPC_X_BAD_STUB_DATA (nca_s_fault_ndr)
	statusSecPkgError     = 0x00000721 // nca_s_fault_sec_pkg_error
	statusCallFailed      = 0x000006be // RPC_S_CALL_FAILED
)

// ErrProtocol reports a malformed PDU received from a peer.
var ErrProtocol = errors.New("winemu: DCE/RPC protocol error")

// header is the 16-byte common header of a connection-oriented PDU.
type header struct {
	Version, Minor uint8
	Type           dcerpc.PacketType
	Flags          dcerpc.PacketFlag
	DRep           [4]byte
	FragLen        uint16
	AuthLen        uint16
	CallID         uint32
}

func (h *header) decode(b []byte) error {
	if len(b) < headerSize {
		return fmt.Errorf("%w: short header", ErrProtocol)
	}
	h.Version, h.Minor = b[0], b[1]
	h.Type, h.Flags = dcerpc.PacketType(b[2]), dcerpc.PacketFlag(b[3])
	copy(h.DRep[:], b[4:8])
	if h.DRep[0]&0xf0 != 0x10 {
		return fmt.Errorf("%w: only little-endian data representation is served", ErrProtocol)
	}
	h.FragLen = binary.LittleEndian.Uint16(b[8:])
	h.AuthLen = binary.LittleEndian.Uint16(b[10:])
	h.CallID = binary.LittleEndian.Uint32(b[12:])
	if h.Version != 5 {
		return fmt.Errorf("%w: rpc version %d.%d", ErrProtocol, h.Version, h.Minor)
	}
	if int(h.FragLen) < headerSize {
		return fmt.Errorf("%w: fragment length %d", ErrProtocol, h.FragLen)
	}
	return nil
}

func (h *header) encode(b []byte) {
	b[0], b[1] = 5, 0
	b[2], b[3] = byte(h.Type), byte(h.Flags)
	b[4], b[5], b[6], b[7] = 0x10, 0, 0, 0
	binary.LittleEndian.PutUint16(b[8:], h.FragLen)
	binary.LittleEndian.PutUint16(b[10:], h.AuthLen)
	binary.LittleEndian.PutUint32(b[12:], h.CallID)
}

// readPDU reads one whole fragment from r into a fresh buffer.
func readPDU(r io.Reader, limit int) (header, []byte, error) {
	var h header
	hb := make([]byte, headerSize)
	if _, err := io.ReadFull(r, hb); err != nil {
		return h, nil, err
	}
	if err := h.decode(hb); err != nil {
		return h, nil, err
	}
	if int(h.FragLen) > limit {
		return h, nil, fmt.Errorf("%w: fragment of %d bytes exceeds %d", ErrProtocol, h.FragLen, limit)
	}
	if int(h.AuthLen)+headerSize > int(h.FragLen) {
		return h, nil, fmt.Errorf("%w: auth length %d", ErrProtocol, h.AuthLen)
	}
	b := make([]byte, h.FragLen)
	copy(b, hb)
	if _, err := io.ReadFull(r, b[headerSize:]); err != nil {
		return h, nil, err
	}
	return h, b, nil
}

// secTrailer is the sec_trailer of an authenticated PDU.
type secTrailer struct {
	AuthType  dcerpc.AuthType
	AuthLevel dcerpc.AuthLevel
	PadLen    uint8
	ContextID uint32
}

// splitAuth locates the security trailer and auth value of a PDU. It
// returns the offset of the trailer, or -1 when the PDU carries none.
func splitAuth(h header, b []byte) (int, secTrailer, []byte, error) {
	var st secTrailer
	if h.AuthLen == 0 {
		return -1, st, nil, nil
	}
	off := int(h.FragLen) - int(h.AuthLen) - secTrailerSize
	if off < headerSize {
		return -1, st, nil, fmt.Errorf("%w: security trailer overlaps header", ErrProtocol)
	}
	t := b[off:]
	st.AuthType, st.AuthLevel, st.PadLen = dcerpc.AuthType(t[0]), dcerpc.AuthLevel(t[1]), t[2]
	st.ContextID = binary.LittleEndian.Uint32(t[4:])
	return off, st, b[off+secTrailerSize:], nil
}

func (st secTrailer) encode(b []byte) {
	b[0], b[1], b[2], b[3] = byte(st.AuthType), byte(st.AuthLevel), st.PadLen, 0
	binary.LittleEndian.PutUint32(b[4:], st.ContextID)
}

// requestBody is the fixed part of a request PDU after the common header.
type requestBody struct {
	AllocHint uint32
	ContextID uint16
	OpNum     uint16
	Object    *uuid.UUID
	StubStart int
}

func decodeRequest(h header, b []byte) (requestBody, error) {
	var rq requestBody
	if len(b) < requestHdrSize {
		return rq, fmt.Errorf("%w: short request", ErrProtocol)
	}
	rq.AllocHint = binary.LittleEndian.Uint32(b[16:])
	rq.ContextID = binary.LittleEndian.Uint16(b[20:])
	rq.OpNum = binary.LittleEndian.Uint16(b[22:])
	rq.StubStart = requestHdrSize
	if h.Flags&dcerpc.PacketFlagObjectUUID != 0 {
		if len(b) < requestHdrSize+16 {
			return rq, fmt.Errorf("%w: short object uuid", ErrProtocol)
		}
		rq.Object = &uuid.UUID{}
		if err := rq.Object.DecodeBinary(b[requestHdrSize : requestHdrSize+16]); err != nil {
			return rq, fmt.Errorf("%w: object uuid: %v", ErrProtocol, err)
		}
		rq.StubStart += 16
	}
	return rq, nil
}

// faultPDU builds a fault PDU with the given status.
func faultPDU(callID uint32, ctxID uint16, status uint32, didNotExecute bool) []byte {
	b := make([]byte, faultSize)
	flags := dcerpc.PacketFlagFirstFrag | dcerpc.PacketFlagLastFrag
	if didNotExecute {
		flags |= dcerpc.PacketFlagDidNotExecute
	}
	h := header{Type: dcerpc.PacketTypeFault, Flags: flags, FragLen: faultSize, CallID: callID}
	h.encode(b)
	binary.LittleEndian.PutUint32(b[16:], 0) // alloc_hint
	binary.LittleEndian.PutUint16(b[20:], ctxID)
	b[22], b[23] = 0, 0 // cancel_count, reserved
	binary.LittleEndian.PutUint32(b[24:], status)
	return b
}

// decodeBind parses a bind or alter_context body with go-msrpc's PDU type.
func decodeBind(b []byte, h header) (*dcerpc.Bind, error) {
	end := int(h.FragLen)
	if h.AuthLen > 0 {
		end -= int(h.AuthLen) + secTrailerSize
	}
	if end < headerSize+8 {
		return nil, fmt.Errorf("%w: short bind", ErrProtocol)
	}
	r := ndr.NDR20(b[headerSize:end], ndr.DefaultDataRepresentation)
	pdu := &dcerpc.Bind{}
	if err := pdu.ReadFrom(context.Background(), r); err != nil {
		return nil, fmt.Errorf("%w: bind: %v", ErrProtocol, err)
	}
	return pdu, nil
}

// controlPDU encodes a bind_ack, alter_context_resp or bind_nak with an
// optional auth verifier.
func controlPDU(typ dcerpc.PacketType, flags dcerpc.PacketFlag, callID uint32, body dcerpc.PDU, st *secTrailer, token []byte) ([]byte, error) {
	w := ndr.NDR20(nil, ndr.DefaultDataRepresentation)
	if err := body.WriteTo(context.Background(), w); err != nil {
		return nil, fmt.Errorf("winemu: encode %s: %w", typ, err)
	}
	pb := w.Bytes()
	out := make([]byte, headerSize, headerSize+len(pb)+16+secTrailerSize+len(token))
	out = append(out, pb...)
	authLen := 0
	if st != nil {
		pad := (4 - len(out)%4) % 4
		out = append(out, make([]byte, pad)...)
		t := *st
		t.PadLen = uint8(pad)
		tb := make([]byte, secTrailerSize)
		t.encode(tb)
		out = append(out, tb...)
		out = append(out, token...)
		authLen = len(token)
	}
	h := header{Type: typ, Flags: flags | dcerpc.PacketFlagFirstFrag | dcerpc.PacketFlagLastFrag, FragLen: uint16(len(out)), AuthLen: uint16(authLen), CallID: callID}
	h.encode(out)
	return out, nil
}

// isBindFeature reports whether a transfer syntax is the bind-time feature
// negotiation marker (MS-RPCE 3.3.1.5.3).
func isBindFeature(s *dcerpc.SyntaxID) bool {
	return s != nil && s.IfUUID != nil && s.IfUUID.TimeLow == 0x6cb71c2c && s.IfUUID.TimeMid == 0x9812 && s.IfUUID.TimeHiAndVersion == 0x4540
}

// isNDR20 reports whether a transfer syntax is NDR 2.0.
func isNDR20(s *dcerpc.SyntaxID) bool {
	return s != nil && s.IfUUID != nil && s.IfUUID.Equals(dcerpc.TransferNDR) && s.IfVersionMajor == 2
}

var zeroSyntax = &dcerpc.SyntaxID{IfUUID: &uuid.UUID{}}
