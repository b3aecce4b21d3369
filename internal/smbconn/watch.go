package smbconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// SMB2 wire constants used by the watcher (MS-SMB2 2.2).
const (
	smb2HeaderSize         = 64
	cmdNegotiate           = 0x0000
	cmdSessionSetup        = 0x0001
	flagServerToRedir      = 0x00000001
	flagSigned             = 0x00000008
	ctxEncryptionCaps      = 0x0002
	capEncryption          = 0x00000040
	securityModeSigningReq = 0x0002
)

// SessionFlags are the SessionFlags of the final SESSION_SETUP response
// (MS-SMB2 2.2.6).
type SessionFlags uint16

// The session flags.
const (
	SessionIsGuest     SessionFlags = 0x0001
	SessionIsNull      SessionFlags = 0x0002
	SessionEncryptData SessionFlags = 0x0004
)

// negotiated is what the watcher read from the NEGOTIATE response.
type negotiated struct {
	seen                                  bool
	dialect                               uint16
	securityMode                          uint16
	capabilities                          uint32
	maxTransact, maxRead, maxWrite        uint32
	cipher                                uint16 // 0 when none was selected
	serverGUID                            [16]byte
	negotiateStatus                       NTStatus
	setupStatus                           NTStatus // last SESSION_SETUP response status
	setupDone                             bool     // a SESSION_SETUP succeeded
	sessionFlags                          SessionFlags
	framesIn, signedIn, unsignedIn, encIn uint64 // after setup
}

// watchConn is a net.Conn that reads the server's stream one Direct TCP
// frame at a time, checks that each frame is well formed before go-smb2
// sees it, and reads the SMB2 headers on the way. It learns what go-smb2
// keeps to itself (the NEGOTIATE parameters and the SessionFlags of the
// final SESSION_SETUP response), and it protects go-smb2, whose receiver
// goroutine panics on a short or inconsistent frame: such a frame fails
// the read with ErrProtocol instead, which ends the connection.
//
// Writes pass through unchanged.
type watchConn struct {
	net.Conn

	// Touched only by go-smb2's single reader goroutine.
	buf  []byte // the current frame, length prefix included
	pend []byte // the part of buf not yet returned
	rerr error  // sticky protocol error

	mu sync.Mutex
	n  negotiated
}

func newWatchConn(c net.Conn) *watchConn { return &watchConn{Conn: c} }

// Read implements net.Conn.
func (c *watchConn) Read(p []byte) (int, error) {
	if len(c.pend) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
			return 0, err
		}
		if hdr[0] != 0 {
			c.rerr = fmt.Errorf("%w: bad Direct TCP frame header", ErrProtocol)
			return 0, c.rerr
		}
		size := int(binary.BigEndian.Uint32(hdr[:]))
		if cap(c.buf) < 4+size {
			c.buf = make([]byte, 4+size)
		}
		c.buf = c.buf[:4+size]
		copy(c.buf, hdr[:])
		if _, err := io.ReadFull(c.Conn, c.buf[4:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // a header without its frame
			}
			return 0, err
		}
		if err := checkFrame(c.buf[4:]); err != nil {
			c.rerr = err
			return 0, err
		}
		c.inspect(c.buf[4:])
		c.pend = c.buf
	}
	n := copy(p, c.pend)
	c.pend = c.pend[n:]
	return n, nil
}

// checkFrame accepts an encrypted frame (go-smb2 authenticates it when it
// decrypts) or a chain of SMB2 messages whose headers and NextCommand
// offsets are consistent with the frame.
func checkFrame(f []byte) error {
	if len(f) >= 4 && f[0] == 0xFD && f[1] == 'S' && f[2] == 'M' && f[3] == 'B' {
		if len(f) < 52 {
			return fmt.Errorf("%w: short transform header", ErrProtocol)
		}
		return nil
	}
	for off := 0; ; {
		h := f[off:]
		if len(h) < smb2HeaderSize || h[0] != 0xFE || h[1] != 'S' || h[2] != 'M' || h[3] != 'B' || binary.LittleEndian.Uint16(h[4:]) != smb2HeaderSize {
			return fmt.Errorf("%w: not an SMB2 message", ErrProtocol)
		}
		next := int(binary.LittleEndian.Uint32(h[20:]))
		if next == 0 {
			return nil
		}
		if next < smb2HeaderSize || next%8 != 0 || next >= len(h) {
			return fmt.Errorf("%w: bad NextCommand %d", ErrProtocol, next)
		}
		off += next
	}
}

// inspect reads the headers of one (possibly truncated) frame. It never
// trusts a length without checking it against the captured bytes.
func (c *watchConn) inspect(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(f) < 4 {
		return
	}
	if f[0] == 0xFD && f[1] == 'S' && f[2] == 'M' && f[3] == 'B' {
		if c.n.setupDone {
			c.n.framesIn++
			c.n.encIn++
		}
		return
	}
	if f[0] != 0xFE || f[1] != 'S' || f[2] != 'M' || f[3] != 'B' {
		return
	}
	for off := 0; off+smb2HeaderSize <= len(f); {
		h := f[off:]
		status := NTStatus(binary.LittleEndian.Uint32(h[8:]))
		cmd := binary.LittleEndian.Uint16(h[12:])
		flags := binary.LittleEndian.Uint32(h[16:])
		next := int(binary.LittleEndian.Uint32(h[20:]))
		if flags&flagServerToRedir != 0 {
			body := h[smb2HeaderSize:]
			if next > 0 && next-smb2HeaderSize <= len(body) && next >= smb2HeaderSize {
				body = body[:next-smb2HeaderSize]
			}
			switch {
			case c.n.setupDone:
				c.n.framesIn++
				if flags&flagSigned != 0 {
					c.n.signedIn++
				} else if status != StatusPending {
					c.n.unsignedIn++
				}
			case cmd == cmdNegotiate:
				c.negotiate(status, h, body)
			case cmd == cmdSessionSetup:
				c.n.setupStatus = status
				if status == StatusSuccess && len(body) >= 4 {
					c.n.sessionFlags = SessionFlags(binary.LittleEndian.Uint16(body[2:]))
					c.n.setupDone = true
				}
			}
		}
		if next <= 0 || next < smb2HeaderSize {
			return
		}
		off += next
	}
}

// negotiate parses a NEGOTIATE response (MS-SMB2 2.2.4). msg starts at
// the SMB2 header, because context offsets count from there.
func (c *watchConn) negotiate(status NTStatus, msg, body []byte) {
	c.n.negotiateStatus = status
	if status != StatusSuccess || len(body) < 64 {
		return
	}
	c.n.seen = true
	c.n.securityMode = binary.LittleEndian.Uint16(body[2:])
	c.n.dialect = binary.LittleEndian.Uint16(body[4:])
	count := int(binary.LittleEndian.Uint16(body[6:]))
	copy(c.n.serverGUID[:], body[8:24])
	c.n.capabilities = binary.LittleEndian.Uint32(body[24:])
	c.n.maxTransact = binary.LittleEndian.Uint32(body[28:])
	c.n.maxRead = binary.LittleEndian.Uint32(body[32:])
	c.n.maxWrite = binary.LittleEndian.Uint32(body[36:])
	c.n.cipher = 0
	if c.n.dialect != 0x0311 {
		return
	}
	off := int(binary.LittleEndian.Uint32(body[60:]))
	for i := 0; i < count && off > 0 && off+8 <= len(msg); i++ {
		typ := binary.LittleEndian.Uint16(msg[off:])
		l := int(binary.LittleEndian.Uint16(msg[off+2:]))
		data := msg[off+8:]
		if l > len(data) {
			return
		}
		data = data[:l]
		if typ == ctxEncryptionCaps && len(data) >= 4 && binary.LittleEndian.Uint16(data) >= 1 {
			c.n.cipher = binary.LittleEndian.Uint16(data[2:])
		}
		off += 8 + l
		off = (off + 7) &^ 7
	}
}

func (c *watchConn) snapshot() negotiated {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
