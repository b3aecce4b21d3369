package netbios

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

const headerLen = 12

// Opcode is the operation of a name service packet.
type Opcode uint8

// Opcodes of RFC 1002 section 4.2.1.1.
const (
	OpcodeQuery        Opcode = 0
	OpcodeRegistration Opcode = 5
	OpcodeRelease      Opcode = 6
	OpcodeWACK         Opcode = 7
	OpcodeRefresh      Opcode = 8
)

// RCode is the result code of a response.
type RCode uint8

// Result codes of RFC 1002 section 4.2.
const (
	RCodeSuccess     RCode = 0
	RCodeFormatError RCode = 1 // FMT_ERR
	RCodeServerError RCode = 2 // SRV_ERR
	RCodeNameError   RCode = 3 // NAM_ERR: the name does not exist
	RCodeNotImpl     RCode = 4 // IMP_ERR
	RCodeRefused     RCode = 5 // RFS_ERR
	RCodeActive      RCode = 6 // ACT_ERR
	RCodeConflict    RCode = 7 // CFT_ERR
)

var rcodeNames = [...]string{"success", "format error", "server error", "name error", "not implemented", "refused", "name active", "name conflict"}

// String returns the RCODE's name in words ("name error").
func (r RCode) String() string {
	if int(r) < len(rcodeNames) {
		return rcodeNames[r]
	}
	return "rcode " + strconv.Itoa(int(r))
}

// Type is a question or resource record type.
type Type uint16

// Record types used by the name service.
const (
	TypeA      Type = 0x0001 // IP address (in redirect responses)
	TypeNS     Type = 0x0002 // name server (in redirect responses)
	TypeNull   Type = 0x000A // NULL (in negative and WACK responses)
	TypeNB     Type = 0x0020 // NetBIOS general name service
	TypeNBSTAT Type = 0x0021 // NetBIOS node status
)

// String returns the type's mnemonic ("NBSTAT"), or "type N".
func (t Type) String() string {
	switch t {
	case TypeA:
		return "A"
	case TypeNS:
		return "NS"
	case TypeNull:
		return "NULL"
	case TypeNB:
		return "NB"
	case TypeNBSTAT:
		return "NBSTAT"
	}
	return "type " + strconv.Itoa(int(t))
}

// Class is a question or resource record class. The name service uses
// only ClassINET.
type Class uint16

// ClassINET is the Internet class.
const ClassINET Class = 1

// Header is the fixed 12-byte header of a name service packet, without
// the section counts (which Pack computes and Unpack checks).
type Header struct {
	ID                 uint16 // NAME_TRN_ID, chosen by the requester
	Response           bool   // R: set in responses
	Opcode             Opcode
	Authoritative      bool // AA
	Truncated          bool // TC
	RecursionDesired   bool // RD
	RecursionAvailable bool // RA
	Broadcast          bool // B: the packet was broadcast
	RCode              RCode
}

const (
	flagR  = 0x8000
	flagAA = 0x0400
	flagTC = 0x0200
	flagRD = 0x0100
	flagRA = 0x0080
	flagB  = 0x0010
)

func (h Header) flags() uint16 {
	f := uint16(h.Opcode&0x0f)<<11 | uint16(h.RCode&0x0f)
	if h.Response {
		f |= flagR
	}
	if h.Authoritative {
		f |= flagAA
	}
	if h.Truncated {
		f |= flagTC
	}
	if h.RecursionDesired {
		f |= flagRD
	}
	if h.RecursionAvailable {
		f |= flagRA
	}
	if h.Broadcast {
		f |= flagB
	}
	return f
}

func headerFromFlags(id, f uint16) Header {
	return Header{
		ID:                 id,
		Response:           f&flagR != 0,
		Opcode:             Opcode(f >> 11 & 0x0f),
		Authoritative:      f&flagAA != 0,
		Truncated:          f&flagTC != 0,
		RecursionDesired:   f&flagRD != 0,
		RecursionAvailable: f&flagRA != 0,
		Broadcast:          f&flagB != 0,
		RCode:              RCode(f & 0x0f),
	}
}

// ParseHeader decodes only the header of a packet. It is cheap and does
// not allocate: a receiver can use it to drop packets that are not the
// responses it waits for before parsing them in full.
func ParseHeader(msg []byte) (Header, error) {
	if len(msg) < headerLen {
		return Header{}, &ParseError{Section: "header", Offset: len(msg), Err: ErrTruncated}
	}
	return headerFromFlags(binary.BigEndian.Uint16(msg), binary.BigEndian.Uint16(msg[2:])), nil
}

// Question is an entry of the question section.
type Question struct {
	Name  Name
	Type  Type // TypeNB for a name query, TypeNBSTAT for a node status request
	Class Class
}

// Resource is a resource record. Body is *NBBody for TypeNB,
// *NodeStatusBody for TypeNBSTAT and *RawBody for every other type (and for
// an NB record of zero length, as some negative responses carry).
type Resource struct {
	Name  Name
	Type  Type
	Class Class
	TTL   uint32 // seconds
	Body  ResourceBody
}

// ResourceBody is the RDATA of a resource record.
type ResourceBody interface {
	// AppendRData appends the wire form of the body, without the
	// RDLENGTH field.
	AppendRData(b []byte) ([]byte, error)
}

// NodeType is the NetBIOS node type (the ONT field): how a node resolves
// names.
type NodeType uint8

// Node types of RFC 1001 (M is Microsoft's, H is RFC 1001's "reserved").
const (
	BNode NodeType = 0 // broadcast
	PNode NodeType = 1 // point-to-point (name server)
	MNode NodeType = 2 // mixed: broadcast first
	HNode NodeType = 3 // hybrid: name server first
)

// String returns "B", "P", "M" or "H".
func (t NodeType) String() string { return [...]string{"B", "P", "M", "H"}[t&3] }

// NBFlags are the NB_FLAGS of a name query or registration record.
type NBFlags uint16

// Group reports whether the name is a group name (G bit).
func (f NBFlags) Group() bool { return f&0x8000 != 0 }

// NodeType returns the owner's node type (ONT field).
func (f NBFlags) NodeType() NodeType { return NodeType(f >> 13 & 3) }

// NBEntry is one owner of a name in an NB record: its flags and address.
type NBEntry struct {
	Flags NBFlags
	Addr  netip.Addr // IPv4
}

// NBBody is the RDATA of an NB record: the owners of a name (several for
// a group name, or for a multihomed node).
type NBBody struct {
	Entries []NBEntry
}

// AppendRData implements ResourceBody.
func (b *NBBody) AppendRData(buf []byte) ([]byte, error) {
	for _, e := range b.Entries {
		if !e.Addr.Is4() {
			return buf, fmt.Errorf("netbios: NB address %v is not IPv4", e.Addr)
		}
		a := e.Addr.As4()
		buf = binary.BigEndian.AppendUint16(buf, uint16(e.Flags))
		buf = append(buf, a[:]...)
	}
	return buf, nil
}

// NameFlags are the NAME_FLAGS of an entry of a node status name table.
type NameFlags uint16

// Group reports whether the name is a group name.
func (f NameFlags) Group() bool { return f&0x8000 != 0 }

// NodeType returns the owner's node type.
func (f NameFlags) NodeType() NodeType { return NodeType(f >> 13 & 3) }

// Deregistering reports the DRG bit: the name is being released.
func (f NameFlags) Deregistering() bool { return f&0x1000 != 0 }

// Conflict reports the CNF bit: the name is in conflict.
func (f NameFlags) Conflict() bool { return f&0x0800 != 0 }

// Active reports the ACT bit: the name is active (always set by real
// stacks).
func (f NameFlags) Active() bool { return f&0x0400 != 0 }

// Permanent reports the PRM bit: the permanent node name.
func (f NameFlags) Permanent() bool { return f&0x0200 != 0 }

// Flag values for building name tables.
const (
	NameFlagGroup         NameFlags = 0x8000
	NameFlagDeregistering NameFlags = 0x1000
	NameFlagConflict      NameFlags = 0x0800
	NameFlagActive        NameFlags = 0x0400
	NameFlagPermanent     NameFlags = 0x0200
)

// NodeName is an entry of a node status name table.
type NodeName struct {
	Name  Name // never has a scope
	Flags NameFlags
}

// String returns the name and "UNIQUE" or "GROUP", as nmblookup shows them.
func (n NodeName) String() string {
	kind := "UNIQUE"
	if n.Flags.Group() {
		kind = "GROUP"
	}
	return n.Name.String() + " " + kind
}

// statsLen is the length of the full STATISTICS field of RFC 1002
// section 4.2.18.
const statsLen = 46

// Statistics is the STATISTICS field of a node status response. Real
// stacks fill in only UnitID (the MAC address), and Samba leaves even that
// zero.
type Statistics struct {
	UnitID                   [6]byte
	Jumpers                  uint8
	TestResult               uint8
	VersionNumber            uint16
	PeriodOfStatistics       uint16
	CRCs                     uint16
	AlignmentErrors          uint16
	Collisions               uint16
	SendAborts               uint16
	GoodSends                uint32
	GoodReceives             uint32
	Retransmits              uint16
	NoResourceConditions     uint16
	FreeCommandBlocks        uint16
	TotalCommandBlocks       uint16
	MaxTotalCommandBlocks    uint16
	PendingSessions          uint16
	MaxPendingSessions       uint16
	MaxTotalSessionsPossible uint16
	SessionDataPacketSize    uint16
}

// NodeStatusBody is the RDATA of an NBSTAT record: the node's name table
// and statistics.
type NodeStatusBody struct {
	Names []NodeName
	Stats Statistics
	// StatsLen is the number of statistics bytes on the wire. Some stacks
	// send fewer than the 46 of the RFC; fields beyond StatsLen are zero.
	// Pack writes exactly StatsLen bytes (zero-padded past 46).
	StatsLen int
}

// MAC returns the unit ID as a hardware address, or nil when it is absent
// or all zero.
func (b *NodeStatusBody) MAC() net.HardwareAddr {
	if b.StatsLen < 6 || b.Stats.UnitID == [6]byte{} {
		return nil
	}
	return net.HardwareAddr(append([]byte(nil), b.Stats.UnitID[:]...))
}

// AppendRData implements ResourceBody.
func (b *NodeStatusBody) AppendRData(buf []byte) ([]byte, error) {
	if len(b.Names) > 255 {
		return buf, ErrTooLarge
	}
	buf = append(buf, byte(len(b.Names)))
	for _, n := range b.Names {
		buf = append(buf, n.Name.Raw[:]...)
		buf = binary.BigEndian.AppendUint16(buf, uint16(n.Flags))
	}
	var st [statsLen]byte
	s := &b.Stats
	copy(st[0:6], s.UnitID[:])
	st[6], st[7] = s.Jumpers, s.TestResult
	be := binary.BigEndian
	be.PutUint16(st[8:], s.VersionNumber)
	be.PutUint16(st[10:], s.PeriodOfStatistics)
	be.PutUint16(st[12:], s.CRCs)
	be.PutUint16(st[14:], s.AlignmentErrors)
	be.PutUint16(st[16:], s.Collisions)
	be.PutUint16(st[18:], s.SendAborts)
	be.PutUint32(st[20:], s.GoodSends)
	be.PutUint32(st[24:], s.GoodReceives)
	be.PutUint16(st[28:], s.Retransmits)
	be.PutUint16(st[30:], s.NoResourceConditions)
	be.PutUint16(st[32:], s.FreeCommandBlocks)
	be.PutUint16(st[34:], s.TotalCommandBlocks)
	be.PutUint16(st[36:], s.MaxTotalCommandBlocks)
	be.PutUint16(st[38:], s.PendingSessions)
	be.PutUint16(st[40:], s.MaxPendingSessions)
	be.PutUint16(st[42:], s.MaxTotalSessionsPossible)
	be.PutUint16(st[44:], s.SessionDataPacketSize)
	if b.StatsLen <= statsLen {
		return append(buf, st[:max(b.StatsLen, 0)]...), nil
	}
	buf = append(buf, st[:]...)
	return append(buf, make([]byte, b.StatsLen-statsLen)...), nil
}

func parseNodeStatus(d []byte) (*NodeStatusBody, error) {
	if len(d) < 1 {
		return nil, ErrInconsistent
	}
	num := int(d[0])
	if 1+num*18 > len(d) {
		return nil, ErrInconsistent
	}
	b := &NodeStatusBody{Names: make([]NodeName, num)}
	p := 1
	for i := range num {
		copy(b.Names[i].Name.Raw[:], d[p:p+16])
		b.Names[i].Flags = NameFlags(binary.BigEndian.Uint16(d[p+16:]))
		p += 18
	}
	rest := d[p:]
	b.StatsLen = len(rest)
	var st [statsLen]byte
	copy(st[:], rest)
	s := &b.Stats
	copy(s.UnitID[:], st[0:6])
	s.Jumpers, s.TestResult = st[6], st[7]
	be := binary.BigEndian
	s.VersionNumber = be.Uint16(st[8:])
	s.PeriodOfStatistics = be.Uint16(st[10:])
	s.CRCs = be.Uint16(st[12:])
	s.AlignmentErrors = be.Uint16(st[14:])
	s.Collisions = be.Uint16(st[16:])
	s.SendAborts = be.Uint16(st[18:])
	s.GoodSends = be.Uint32(st[20:])
	s.GoodReceives = be.Uint32(st[24:])
	s.Retransmits = be.Uint16(st[28:])
	s.NoResourceConditions = be.Uint16(st[30:])
	s.FreeCommandBlocks = be.Uint16(st[32:])
	s.TotalCommandBlocks = be.Uint16(st[34:])
	s.MaxTotalCommandBlocks = be.Uint16(st[36:])
	s.PendingSessions = be.Uint16(st[38:])
	s.MaxPendingSessions = be.Uint16(st[40:])
	s.MaxTotalSessionsPossible = be.Uint16(st[42:])
	s.SessionDataPacketSize = be.Uint16(st[44:])
	return b, nil
}

// RawBody is the RDATA of any record this package does not decode: NULL,
// A and NS records, and records of unknown types. Data is a copy.
type RawBody struct {
	Data []byte
}

// AppendRData implements ResourceBody.
func (b *RawBody) AppendRData(buf []byte) ([]byte, error) { return append(buf, b.Data...), nil }

// Message is a whole name service packet.
type Message struct {
	Header
	Questions   []Question
	Answers     []Resource
	Authorities []Resource
	Additionals []Resource
}

// Pack returns the wire form of m.
func (m *Message) Pack() ([]byte, error) { return m.AppendPack(make([]byte, 0, 64)) }

// AppendPack appends the wire form of m to b. Names are written in full:
// Pack never emits compression pointers.
func (m *Message) AppendPack(b []byte) ([]byte, error) {
	counts := [4]int{len(m.Questions), len(m.Answers), len(m.Authorities), len(m.Additionals)}
	b = binary.BigEndian.AppendUint16(b, m.ID)
	b = binary.BigEndian.AppendUint16(b, m.flags())
	for _, c := range counts {
		if c > 0xffff {
			return b, ErrTooLarge
		}
		b = binary.BigEndian.AppendUint16(b, uint16(c))
	}
	var err error
	for _, q := range m.Questions {
		if b, err = appendName(b, q.Name); err != nil {
			return b, err
		}
		b = binary.BigEndian.AppendUint16(b, uint16(q.Type))
		b = binary.BigEndian.AppendUint16(b, uint16(q.Class))
	}
	for _, sec := range [][]Resource{m.Answers, m.Authorities, m.Additionals} {
		for _, r := range sec {
			if b, err = appendName(b, r.Name); err != nil {
				return b, err
			}
			b = binary.BigEndian.AppendUint16(b, uint16(r.Type))
			b = binary.BigEndian.AppendUint16(b, uint16(r.Class))
			b = binary.BigEndian.AppendUint32(b, r.TTL)
			lenAt := len(b)
			b = append(b, 0, 0)
			if r.Body != nil {
				if b, err = r.Body.AppendRData(b); err != nil {
					return b, err
				}
			}
			n := len(b) - lenAt - 2
			if n > 0xffff {
				return b, ErrTooLarge
			}
			binary.BigEndian.PutUint16(b[lenAt:], uint16(n))
		}
	}
	return b, nil
}

// Unpack parses msg into m, replacing its contents. It never panics and
// never reads past msg; on failure it returns a *ParseError and m holds
// what was parsed before the error. Trailing bytes after the last record
// are ignored, as some stacks pad their packets. Names in the question
// section must be written in full; a resource record's name may be a label
// string pointer to an earlier name, as RFC 1002 section 4.1 allows.
// Unpack keeps no reference to msg.
func (m *Message) Unpack(msg []byte) error {
	h, err := ParseHeader(msg)
	if err != nil {
		return err
	}
	*m = Message{Header: h}
	be := binary.BigEndian
	counts := [4]int{int(be.Uint16(msg[4:])), int(be.Uint16(msg[6:])), int(be.Uint16(msg[8:])), int(be.Uint16(msg[10:]))}
	off := headerLen
	// Preallocate no more than the packet could possibly hold, so that a
	// hostile count costs nothing.
	const minQuestion, minResource = 34 + 4, 2 + 10
	if n := counts[0]; n > 0 {
		m.Questions = make([]Question, 0, min(n, (len(msg)-off)/minQuestion+1))
	}
	for i := range counts[0] {
		var q Question
		name, next, err := decodeName(msg, off, false)
		if err != nil {
			return &ParseError{Section: "question " + strconv.Itoa(i), Offset: off, Err: err}
		}
		if next+4 > len(msg) {
			return &ParseError{Section: "question " + strconv.Itoa(i), Offset: next, Err: ErrTruncated}
		}
		q.Name = name
		q.Type = Type(be.Uint16(msg[next:]))
		q.Class = Class(be.Uint16(msg[next+2:]))
		off = next + 4
		m.Questions = append(m.Questions, q)
	}
	sections := [3]*[]Resource{&m.Answers, &m.Authorities, &m.Additionals}
	secNames := [3]string{"answer ", "authority ", "additional "}
	for s, sec := range sections {
		n := counts[s+1]
		if n > 0 {
			*sec = make([]Resource, 0, min(n, (len(msg)-off)/minResource+1))
		}
		for i := range n {
			r, next, err := unpackResource(msg, off)
			if err != nil {
				err.Section = secNames[s] + strconv.Itoa(i)
				return err
			}
			off = next
			*sec = append(*sec, r)
		}
	}
	return nil
}

func unpackResource(msg []byte, off int) (Resource, int, *ParseError) {
	var r Resource
	be := binary.BigEndian
	name, p, err := decodeName(msg, off, true)
	if err != nil {
		return r, off, &ParseError{Offset: off, Err: err}
	}
	if p+10 > len(msg) {
		return r, off, &ParseError{Offset: p, Err: ErrTruncated}
	}
	r.Name = name
	r.Type = Type(be.Uint16(msg[p:]))
	r.Class = Class(be.Uint16(msg[p+2:]))
	r.TTL = be.Uint32(msg[p+4:])
	rdlen := int(be.Uint16(msg[p+8:]))
	p += 10
	if p+rdlen > len(msg) {
		return r, off, &ParseError{Offset: p - 2, Err: ErrTruncated}
	}
	d := msg[p : p+rdlen]
	switch {
	case r.Type == TypeNB && rdlen > 0:
		if rdlen%6 != 0 {
			return r, off, &ParseError{Offset: p - 2, Err: ErrInconsistent}
		}
		b := &NBBody{Entries: make([]NBEntry, rdlen/6)}
		for i := range b.Entries {
			e := d[6*i:]
			b.Entries[i] = NBEntry{Flags: NBFlags(be.Uint16(e)), Addr: netip.AddrFrom4([4]byte(e[2:6]))}
		}
		r.Body = b
	case r.Type == TypeNBSTAT:
		b, err := parseNodeStatus(d)
		if err != nil {
			return r, off, &ParseError{Offset: p, Err: err}
		}
		r.Body = b
	default:
		r.Body = &RawBody{Data: append([]byte(nil), d...)}
	}
	return r, p + rdlen, nil
}

// NewNodeStatusRequest returns a node status request (RFC 1002 section
// 4.2.17) for name, usually [WildcardName], with transaction ID id.
func NewNodeStatusRequest(id uint16, name Name) *Message {
	return &Message{
		Header:    Header{ID: id},
		Questions: []Question{{Name: name, Type: TypeNBSTAT, Class: ClassINET}},
	}
}

// NewNameQueryRequest returns a name query request (RFC 1002 section
// 4.2.12) for name with transaction ID id. A broadcast query sets the B
// flag; both ask for recursion, as Windows and Samba do.
func NewNameQueryRequest(id uint16, name Name, broadcast bool) *Message {
	return &Message{
		Header:    Header{ID: id, RecursionDesired: true, Broadcast: broadcast},
		Questions: []Question{{Name: name, Type: TypeNB, Class: ClassINET}},
	}
}

// NodeStatus returns the body of the first NBSTAT answer of a successful
// response. It returns an *RCodeError for a response with a non-zero
// RCODE, and ErrInconsistent wrapped in a *ParseError when there is no
// NBSTAT answer.
func (m *Message) NodeStatus() (*NodeStatusBody, error) {
	for _, a := range m.Answers {
		if b, ok := a.Body.(*NodeStatusBody); ok {
			if m.RCode != RCodeSuccess {
				return nil, &RCodeError{RCode: m.RCode, Name: a.Name}
			}
			return b, nil
		}
	}
	if m.RCode != RCodeSuccess {
		return nil, &RCodeError{RCode: m.RCode}
	}
	return nil, &ParseError{Section: "answer", Offset: headerLen, Err: ErrInconsistent}
}

// NameQueryAnswer returns the owners listed in a positive name query
// response. A negative response gives an *RCodeError (errors.Is with
// ErrNameNotFound for NAM_ERR); a response without an NB answer gives
// ErrInconsistent wrapped in a *ParseError.
func (m *Message) NameQueryAnswer() ([]NBEntry, error) {
	var name Name
	if len(m.Answers) > 0 {
		name = m.Answers[0].Name
	} else if len(m.Questions) > 0 {
		name = m.Questions[0].Name
	}
	if m.RCode != RCodeSuccess {
		return nil, &RCodeError{RCode: m.RCode, Name: name}
	}
	for _, a := range m.Answers {
		if b, ok := a.Body.(*NBBody); ok && a.Type == TypeNB {
			return b.Entries, nil
		}
	}
	return nil, &ParseError{Section: "answer", Offset: headerLen, Err: ErrInconsistent}
}
