package smbprobe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is matched (errors.Is) by every error about an answer that
// is not a well-formed SMB2 response of the kind expected.
var ErrMalformed = errors.New("smbprobe: malformed SMB2 response")

// MalformedError says what was wrong with a response and where.
type MalformedError struct {
	What   string // what was being read
	Offset int    // byte offset in the SMB2 message, or -1
}

func (e *MalformedError) Error() string {
	if e.Offset < 0 {
		return "smbprobe: malformed SMB2 response: " + e.What
	}
	return fmt.Sprintf("smbprobe: malformed SMB2 response: %s (at byte %d)", e.What, e.Offset)
}

// Is makes errors.Is(err, ErrMalformed) true.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

func malformed(what string, off int) error { return &MalformedError{What: what, Offset: off} }

// SMB2 constants used by the probe (MS-SMB2 2.2).
const (
	headerSize = 64

	cmdNegotiate    = 0x0000
	cmdSessionSetup = 0x0001

	statusSuccess               = 0x00000000
	statusMoreProcessing        = 0xC0000016
	securitySigningEnabled      = 0x0001
	securitySigningRequired     = 0x0002
	negCtxPreauthIntegrity      = 0x0001
	negCtxEncryption            = 0x0002
	hashSHA512                  = 0x0001
	cipherAES128CCM             = 0x0001
	cipherAES128GCM             = 0x0002
	flagServerToRedir           = 0x00000001
	negotiateResponseStructSize = 65
	setupResponseStructSize     = 9
)

// Dialects the probe offers, oldest first.
var offeredDialects = []uint16{0x0202, 0x0210, 0x0300, 0x0302, 0x0311}

// header writes an SMB2 sync request header.
func header(b []byte, cmd uint16, msgID uint64) {
	copy(b[0:4], "\xfeSMB")
	binary.LittleEndian.PutUint16(b[4:], headerSize)
	binary.LittleEndian.PutUint16(b[6:], 1) // CreditCharge
	binary.LittleEndian.PutUint16(b[12:], cmd)
	binary.LittleEndian.PutUint16(b[14:], 1) // CreditRequest
	binary.LittleEndian.PutUint64(b[24:], msgID)
}

// negotiateRequest builds an SMB2 NEGOTIATE offering 2.0.2 to 3.1.1, with
// the two negotiate contexts 3.1.1 requires. clientGUID and salt are the
// caller's (random) values.
func negotiateRequest(clientGUID [16]byte, salt [32]byte) []byte {
	const bodyFixed = 36
	dialectsEnd := headerSize + bodyFixed + 2*len(offeredDialects)
	ctxOff := align8(dialectsEnd)
	preauth := make([]byte, 8+2+2+2+len(salt))
	binary.LittleEndian.PutUint16(preauth[0:], negCtxPreauthIntegrity)
	binary.LittleEndian.PutUint16(preauth[2:], uint16(len(preauth)-8))
	binary.LittleEndian.PutUint16(preauth[8:], 1)                  // HashAlgorithmCount
	binary.LittleEndian.PutUint16(preauth[10:], uint16(len(salt))) // SaltLength
	binary.LittleEndian.PutUint16(preauth[12:], hashSHA512)
	copy(preauth[14:], salt[:])
	enc := make([]byte, 8+2+4)
	binary.LittleEndian.PutUint16(enc[0:], negCtxEncryption)
	binary.LittleEndian.PutUint16(enc[2:], uint16(len(enc)-8))
	binary.LittleEndian.PutUint16(enc[8:], 2) // CipherCount
	binary.LittleEndian.PutUint16(enc[10:], cipherAES128GCM)
	binary.LittleEndian.PutUint16(enc[12:], cipherAES128CCM)

	encOff := align8(ctxOff + len(preauth))
	b := make([]byte, encOff+len(enc))
	header(b, cmdNegotiate, 0)
	binary.LittleEndian.PutUint16(b[6:], 0) // CreditCharge 0 on NEGOTIATE
	body := b[headerSize:]
	binary.LittleEndian.PutUint16(body[0:], bodyFixed)
	binary.LittleEndian.PutUint16(body[2:], uint16(len(offeredDialects)))
	binary.LittleEndian.PutUint16(body[4:], securitySigningEnabled)
	copy(body[12:28], clientGUID[:])
	binary.LittleEndian.PutUint32(body[28:], uint32(ctxOff))
	binary.LittleEndian.PutUint16(body[32:], 2) // NegotiateContextCount
	for i, d := range offeredDialects {
		binary.LittleEndian.PutUint16(body[bodyFixed+2*i:], d)
	}
	copy(b[ctxOff:], preauth)
	copy(b[encOff:], enc)
	return b
}

func align8(n int) int { return (n + 7) &^ 7 }

// ntlmNegotiate is an anonymous NTLM NEGOTIATE_MESSAGE (MS-NLMP 2.2.1.1)
// asking for target info and the server's version. It names no user,
// domain or workstation.
func ntlmNegotiate() []byte {
	const (
		unicode     = 0x00000001
		reqTarget   = 0x00000004
		ntlm        = 0x00000200
		alwaysSign  = 0x00008000
		extSecurity = 0x00080000
		targetInfo  = 0x00800000
		version     = 0x02000000
		n128        = 0x20000000
		n56         = 0x80000000
	)
	b := make([]byte, 40)
	copy(b, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(b[8:], 1)
	binary.LittleEndian.PutUint32(b[12:], unicode|reqTarget|ntlm|alwaysSign|extSecurity|targetInfo|version|n128|n56)
	// Domain and workstation fields stay empty; Version: 10.0.0, NTLM revision 15.
	b[32], b[33], b[39] = 10, 0, 15
	return b
}

// spnegoInit wraps an NTLM token in a SPNEGO NegTokenInit (RFC 4178) that
// offers only NTLMSSP.
func spnegoInit(tok []byte) []byte {
	ntlmOID := []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a}
	mechTypes := derTLV(0xa0, derTLV(0x30, ntlmOID))
	mechToken := derTLV(0xa2, derTLV(0x04, tok))
	negTokenInit := derTLV(0xa0, derTLV(0x30, append(mechTypes, mechToken...)))
	spnegoOID := []byte{0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}
	return derTLV(0x60, append(spnegoOID, negTokenInit...))
}

// derTLV encodes one DER tag-length-value (definite lengths up to 64 KiB).
func derTLV(tag byte, v []byte) []byte {
	n := len(v)
	var out []byte
	switch {
	case n < 0x80:
		out = []byte{tag, byte(n)}
	case n < 0x100:
		out = []byte{tag, 0x81, byte(n)}
	default:
		out = []byte{tag, 0x82, byte(n >> 8), byte(n)}
	}
	return append(out, v...)
}

// sessionSetupRequest builds an SMB2 SESSION_SETUP carrying token.
func sessionSetupRequest(token []byte) []byte {
	const bodyFixed = 24
	b := make([]byte, headerSize+bodyFixed+len(token))
	header(b, cmdSessionSetup, 1)
	body := b[headerSize:]
	binary.LittleEndian.PutUint16(body[0:], bodyFixed+1)
	body[3] = securitySigningEnabled
	binary.LittleEndian.PutUint16(body[12:], headerSize+bodyFixed)
	binary.LittleEndian.PutUint16(body[14:], uint16(len(token)))
	copy(body[bodyFixed:], token)
	return b
}

// Negotiated is what an SMB2 NEGOTIATE response says.
type Negotiated struct {
	Dialect         uint16
	SigningRequired bool
	ServerGUID      [16]byte
	Capabilities    uint32
}

// parseHeader checks an SMB2 response header for cmd and returns its
// status.
func parseHeader(msg []byte, cmd uint16) (uint32, error) {
	if len(msg) < headerSize {
		return 0, malformed("shorter than an SMB2 header", -1)
	}
	if string(msg[0:4]) != "\xfeSMB" {
		if string(msg[0:4]) == "\xffSMB" {
			return 0, malformed("SMBv1 answer: the server does not speak SMB2", 0)
		}
		return 0, malformed("no SMB2 protocol ID", 0)
	}
	if binary.LittleEndian.Uint16(msg[4:]) != headerSize {
		return 0, malformed("bad header size", 4)
	}
	if got := binary.LittleEndian.Uint16(msg[12:]); got != cmd {
		return 0, malformed(fmt.Sprintf("response to command %d, want %d", got, cmd), 12)
	}
	if binary.LittleEndian.Uint32(msg[16:])&flagServerToRedir == 0 {
		return 0, malformed("not a response", 16)
	}
	return binary.LittleEndian.Uint32(msg[8:]), nil
}

// ParseNegotiateResponse decodes an SMB2 NEGOTIATE response (the SMB2
// message, without the 4-byte transport header).
func ParseNegotiateResponse(msg []byte) (Negotiated, error) {
	st, err := parseHeader(msg, cmdNegotiate)
	if err != nil {
		return Negotiated{}, err
	}
	if st != statusSuccess {
		return Negotiated{}, &StatusError{Command: "NEGOTIATE", Status: st}
	}
	body := msg[headerSize:]
	if len(body) < 64 {
		return Negotiated{}, malformed("NEGOTIATE response body truncated", headerSize)
	}
	if binary.LittleEndian.Uint16(body[0:]) != negotiateResponseStructSize {
		return Negotiated{}, malformed("bad NEGOTIATE response structure size", headerSize)
	}
	var n Negotiated
	n.SigningRequired = binary.LittleEndian.Uint16(body[2:])&securitySigningRequired != 0
	n.Dialect = binary.LittleEndian.Uint16(body[4:])
	copy(n.ServerGUID[:], body[8:24])
	n.Capabilities = binary.LittleEndian.Uint32(body[24:])
	if n.Dialect == 0x02ff {
		return n, malformed("server answered with the SMB2 wildcard dialect", headerSize+4)
	}
	return n, nil
}

// StatusError is an SMB2 response with an unexpected NT status.
type StatusError struct {
	Command string
	Status  uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("smbprobe: %s answered NT status 0x%08X", e.Command, e.Status)
}

// parseSessionSetupResponse returns the security buffer of an SMB2
// SESSION_SETUP response that asks for more processing.
func parseSessionSetupResponse(msg []byte) ([]byte, error) {
	st, err := parseHeader(msg, cmdSessionSetup)
	if err != nil {
		return nil, err
	}
	if st != statusMoreProcessing {
		return nil, &StatusError{Command: "SESSION_SETUP", Status: st}
	}
	body := msg[headerSize:]
	if len(body) < 8 {
		return nil, malformed("SESSION_SETUP response body truncated", headerSize)
	}
	if binary.LittleEndian.Uint16(body[0:]) != setupResponseStructSize {
		return nil, malformed("bad SESSION_SETUP response structure size", headerSize)
	}
	off := int(binary.LittleEndian.Uint16(body[4:]))
	n := int(binary.LittleEndian.Uint16(body[6:]))
	if off < headerSize+8 || off+n > len(msg) {
		return nil, malformed("security buffer outside the message", headerSize+4)
	}
	return msg[off : off+n], nil
}
