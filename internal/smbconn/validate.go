package smbconn

import (
	"encoding/binary"
	"fmt"
)

// SMB2 commands (MS-SMB2 2.2.1.2) whose responses carry variable parts.
const (
	cmdTreeConnect    = 0x0003
	cmdCreate         = 0x0005
	cmdRead           = 0x0008
	cmdIoctl          = 0x000B
	cmdQueryDirectory = 0x000E
	cmdChangeNotify   = 0x000F
	cmdQueryInfo      = 0x0010
)

// Statuses after which go-smb2 decodes a response body other than the
// ERROR response.
const (
	statusBufferOverflow = NTStatus(0x80000005)
)

// checkMessage checks one SMB2 response (msg starts at its header and
// ends where the next chained message starts) against what go-smb2's
// decoders will do with it: every offset and length they slice with must
// stay inside the message, computed without the 16- and 32-bit wrap-around
// that their own checks suffer from (a READ with DataOffset 80 and
// DataLength 0xFFFFFFF0 passes go-smb2's check and panics its decoder).
// Fixed-size parts and structure sizes are left to go-smb2, which checks
// them before slicing.
func checkMessage(msg []byte) error {
	if len(msg) < smb2HeaderSize {
		return fmt.Errorf("%w: short SMB2 message", ErrProtocol)
	}
	status := NTStatus(binary.LittleEndian.Uint32(msg[8:]))
	cmd := binary.LittleEndian.Uint16(msg[12:])
	flags := binary.LittleEndian.Uint32(msg[16:])
	if flags&flagServerToRedir == 0 {
		return fmt.Errorf("%w: a request from the server", ErrProtocol)
	}
	body := msg[smb2HeaderSize:]
	switch {
	case status == StatusPending:
		// An interim response: go-smb2 reads its header only.
		return nil
	case status == StatusSuccess,
		cmd == cmdSessionSetup && status == StatusMoreProcessingRequired,
		cmd == cmdIoctl && status == statusBufferOverflow:
		return checkBody(cmd, msg, body)
	}
	return checkErrorBody(body)
}

// span checks a buffer that go-smb2 slices as msg[off : off+n] when off
// lies beyond the fixed part of the body (fixed bytes after the header);
// below that it ignores the buffer.
func span(msg []byte, off, n uint64, fixed int, what string) error {
	if off < uint64(smb2HeaderSize+fixed) {
		return nil
	}
	if off+n > uint64(len(msg)) {
		return fmt.Errorf("%w: %s (offset %d, length %d) beyond the %d-byte message", ErrProtocol, what, off, n, len(msg))
	}
	return nil
}

func u16(b []byte, off int) uint64 {
	if off+2 > len(b) {
		return 0
	}
	return uint64(binary.LittleEndian.Uint16(b[off:]))
}

func u32(b []byte, off int) uint64 {
	if off+4 > len(b) {
		return 0
	}
	return uint64(binary.LittleEndian.Uint32(b[off:]))
}

func checkBody(cmd uint16, msg, body []byte) error {
	switch cmd {
	case cmdNegotiate:
		if len(body) < 64 {
			return nil // go-smb2 rejects it
		}
		if err := span(msg, u16(body, 56), u16(body, 58), 64, "negotiate security buffer"); err != nil {
			return err
		}
		if binary.LittleEndian.Uint16(body[4:]) == 0x0311 {
			return checkNegotiateContexts(msg, int(u32(body, 60)), int(u16(body, 6)))
		}
	case cmdSessionSetup:
		return span(msg, u16(body, 4), u16(body, 6), 8, "session setup security buffer")
	case cmdCreate:
		return span(msg, u32(body, 80), u32(body, 84), 88, "create contexts")
	case cmdRead:
		if len(body) < 16 {
			return nil
		}
		return span(msg, uint64(body[2]), u32(body, 4), 16, "read data")
	case cmdIoctl:
		if err := span(msg, u32(body, 24), u32(body, 28), 48, "ioctl input"); err != nil {
			return err
		}
		return span(msg, u32(body, 32), u32(body, 36), 48, "ioctl output")
	case cmdQueryDirectory, cmdQueryInfo, cmdChangeNotify:
		return span(msg, u16(body, 2), u32(body, 4), 8, "output buffer")
	}
	return nil
}

// checkNegotiateContexts walks the SMB 3.1.1 negotiate contexts as go-smb2
// does (count contexts from off, each 8-byte aligned).
func checkNegotiateContexts(msg []byte, off, count int) error {
	if off < smb2HeaderSize {
		if count > 0 {
			return fmt.Errorf("%w: negotiate contexts without an offset", ErrProtocol)
		}
		return nil
	}
	for i := 0; i < count; i++ {
		if off+8 > len(msg) {
			return fmt.Errorf("%w: negotiate context %d beyond the message", ErrProtocol, i)
		}
		typ := binary.LittleEndian.Uint16(msg[off:])
		l := int(binary.LittleEndian.Uint16(msg[off+2:]))
		if off+8+l > len(msg) {
			return fmt.Errorf("%w: negotiate context %d longer than the message", ErrProtocol, i)
		}
		data := msg[off+8 : off+8+l]
		switch typ {
		case 0x0001: // preauth integrity: count, salt length, algorithms, salt
			if len(data) < 4 || 4+2*int(u16(data, 0))+int(u16(data, 2)) > len(data) {
				return fmt.Errorf("%w: broken preauth integrity context", ErrProtocol)
			}
		case ctxEncryptionCaps: // count, ciphers
			if len(data) < 2 || 2+2*int(u16(data, 0)) > len(data) {
				return fmt.Errorf("%w: broken encryption context", ErrProtocol)
			}
		}
		off += 8 + l
		off = (off + 7) &^ 7
	}
	return nil
}

// checkErrorBody checks an SMB2 ERROR response (MS-SMB2 2.2.2) as
// go-smb2's acceptError reads it: ByteCount bytes of error data, split
// into ErrorContextCount contexts when that is not zero.
func checkErrorBody(body []byte) error {
	if len(body) < 8 {
		return nil // go-smb2 rejects it
	}
	count := int(body[2])
	n := u32(body, 4)
	if 8+n > uint64(len(body)) {
		return fmt.Errorf("%w: error data (%d bytes) beyond the message", ErrProtocol, n)
	}
	data := body[8 : 8+n]
	for i := 0; i < count; i++ {
		if len(data) < 8 {
			return nil // go-smb2 rejects it
		}
		l := u32(data, 0)
		if 8+l > uint64(len(data)) {
			return fmt.Errorf("%w: error context %d beyond the message", ErrProtocol, i)
		}
		next := 8 + ((l + 7) &^ 7)
		if next > uint64(len(data)) {
			return nil // go-smb2 rejects it
		}
		data = data[next:]
	}
	return nil
}
