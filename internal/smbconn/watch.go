package smbconn

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
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
	cmdWrite               = 0x0009
	shareFlagEncryptData   = 0x00008000
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
	sessionID                             uint64
	sessionIDKnown                        bool
	framesIn, signedIn, unsignedIn, encIn uint64 // after setup
}

// watchConn is a net.Conn that reads the server's stream one Direct TCP
// frame at a time, checks that each frame is well formed before go-smb2
// sees it, and reads the SMB2 headers on the way. It learns what go-smb2
// keeps to itself (the NEGOTIATE parameters and the SessionFlags of the
// final SESSION_SETUP response), and it protects go-smb2, whose receiver
// goroutine panics on a short or inconsistent frame and whose decoders
// panic on lengths that wrap around: such a frame fails the read with
// ErrProtocol instead, which ends the connection.
//
// Encrypted frames are decrypted here too, with keys derived as go-smb2
// derives them (the session key from the initiator, and for SMB 3.1.1 the
// preauth integrity hash of the NEGOTIATE and SESSION_SETUP messages,
// which the watcher hashes from both directions), and the plaintext is
// checked like any other frame. go-smb2 then gets the encrypted frame
// unchanged and decrypts it again: a hostile server that completed the
// logon cannot reach go-smb2's decoders through encryption.
//
// Writes pass through unchanged; until the session is set up the watcher
// reads them for the preauth hash.
type watchConn struct {
	net.Conn

	// Touched only by go-smb2's single reader goroutine.
	buf  []byte // the current frame, length prefix included
	pend []byte // the part of buf not yet returned
	rerr error  // sticky protocol error
	dec  cipher.AEAD

	// sessionKey returns the NTLM session key once the initiator has
	// one; nil before or for guest sessions.
	sessionKey func() []byte
	// minDialect refuses a NEGOTIATE response below it (Options.MinDialect).
	minDialect Dialect
	// nbt is set on the NetBIOS session service (TransportNetBIOS): the
	// server's SESSION KEEP ALIVE packets are dropped here.
	nbt bool

	mu      sync.Mutex
	n       negotiated
	wbuf    []byte                       // written bytes not yet split into frames
	wneed   int                          // the size of the frame whose header was written alone
	preauth [64]byte                     // SMB 3.1.1 preauth integrity hash (SHA-512)
	negReq  []byte                       // the client's NEGOTIATE request
	writes  map[uint64]uint32            // WRITE requests in flight: message id -> length
	enc     cipher.AEAD                  // the client-to-server key (FSCTL_VALIDATE_NEGOTIATE_INFO)
	peek    func(dst, src, nonce []byte) // decrypts the start of an encrypted request
	peekBuf []byte                       // its plaintext, reused

	// FSCTL_VALIDATE_NEGOTIATE_INFO (validate_negotiate.go).
	vArmed   bool
	vHeld    bool // the Direct TCP header of the request to replace was held back
	vPayload []byte
	vMsgID   uint64
	vAnswer  validateAnswer
}

func newWatchConn(c net.Conn) *watchConn { return &watchConn{Conn: c} }

// Read implements net.Conn.
func (c *watchConn) Read(p []byte) (int, error) {
	if len(c.pend) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		var hdr [4]byte
		for {
			if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
				return 0, err
			}
			// RFC 1002 4.3.7: a SESSION KEEP ALIVE has no body and is
			// not part of the SMB stream.
			if !c.nbt || hdr[0] != nbtKeepAlive {
				break
			}
			if hdr[1] != 0 || hdr[2] != 0 || hdr[3] != 0 {
				c.rerr = fmt.Errorf("%w: NetBIOS keep-alive with a body", ErrProtocol)
				return 0, c.rerr
			}
		}
		if hdr[0] != nbtSessionMessage {
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
		if err := c.admit(c.buf[4:]); err != nil {
			c.rerr = err
			return 0, err
		}
		c.pend = c.buf
	}
	n := copy(p, c.pend)
	c.pend = c.pend[n:]
	return n, nil
}

// admit checks one frame (decrypting it first when it is encrypted) and
// records what it says.
func (c *watchConn) admit(f []byte) error {
	if isTransform(f) {
		plain, err := c.open(f)
		if err != nil {
			return err
		}
		if err := checkFrame(plain); err != nil {
			return err
		}
		if err := c.checkWrites(plain); err != nil {
			return err
		}
		if err := c.checkEncryptFlags(plain); err != nil {
			return err
		}
		c.noteValidate(plain, true)
		c.inspect(plain, plain, true)
		return nil
	}
	if err := checkFrame(f); err != nil {
		return err
	}
	if err := c.checkWrites(f); err != nil {
		return err
	}
	if err := c.checkEncryptFlags(f); err != nil {
		return err
	}
	c.noteValidate(f, false)
	c.inspect(f, f, false)
	if c.minDialect != 0 {
		// Before go-smb2 answers the NEGOTIATE with a SESSION_SETUP that
		// carries the credentials.
		if n := c.snapshot(); n.seen && !n.setupDone && Dialect(n.dialect) < c.minDialect {
			return fmt.Errorf("%w: the server negotiated SMB %v, below the minimum %v", ErrDowngrade, Dialect(n.dialect), c.minDialect)
		}
	}
	return nil
}

func isTransform(f []byte) bool {
	return len(f) >= 4 && f[0] == 0xFD && f[1] == 'S' && f[2] == 'M' && f[3] == 'B'
}

// open authenticates and decrypts an SMB2 TRANSFORM frame (MS-SMB2
// 2.2.41) as go-smb2 will.
func (c *watchConn) open(f []byte) ([]byte, error) {
	if len(f) < 52+1 {
		return nil, fmt.Errorf("%w: short transform header", ErrProtocol)
	}
	c.mu.Lock()
	n, pa := c.n, c.preauth
	c.mu.Unlock()
	if binary.LittleEndian.Uint16(f[42:]) != 1 {
		return nil, fmt.Errorf("%w: transform header without the encrypted flag", ErrProtocol)
	}
	if !n.sessionIDKnown || binary.LittleEndian.Uint64(f[44:]) != n.sessionID {
		return nil, fmt.Errorf("%w: encrypted frame for an unknown session", ErrProtocol)
	}
	if c.dec == nil {
		d, err := c.aead(n, pa, false)
		if err != nil {
			return nil, err
		}
		c.dec = d
	}
	ct := make([]byte, 0, len(f)-52+16)
	ct = append(append(ct, f[52:]...), f[4:20]...)
	plain, err := c.dec.Open(ct[:0], f[20:20+c.dec.NonceSize()], ct, f[20:52])
	if err != nil {
		// Altered on the way, or not from the session's peer: an
		// integrity failure, like a bad signature.
		return nil, fmt.Errorf("%w: %w: encrypted frame fails authentication", ErrProtocol, ErrSigning)
	}
	return plain, nil
}

// aead derives the server-to-client key (c2s false) or the client-to-
// server key as go-smb2 does (MS-SMB2 3.2.5.3.1) and returns its AEAD.
func (c *watchConn) aead(n negotiated, preauth [64]byte, c2s bool) (cipher.AEAD, error) {
	b, gcm, err := c.cipherKey(n, preauth, c2s)
	if err != nil {
		return nil, err
	}
	if gcm {
		return cipher.NewGCMWithNonceSize(b, 12)
	}
	return newCCM(b, 11), nil
}

// peeker derives the client-to-server key as aead does and returns a
// function that decrypts the first len(dst) bytes of an encrypted
// frame's payload (src, at least as long) with the frame's nonce: the
// counter-mode key stream of AES-GCM or AES-CCM, without the tag check.
// It is only for reading the client's own requests, whose bytes go-smb2
// made in this process: nothing from the network is trusted with it.
func (c *watchConn) peeker(n negotiated, preauth [64]byte) (func(dst, src, nonce []byte), error) {
	b, gcm, err := c.cipherKey(n, preauth, true)
	if err != nil {
		return nil, err
	}
	if !gcm {
		cc := newCCM(b, 11)
		return func(dst, src, nonce []byte) { cc.ctr(dst, src[:len(dst)], nonce[:11]) }, nil
	}
	return func(dst, src, nonce []byte) {
		// GCM (SP 800-38D) with a 96-bit IV: J0 = IV || 1, and the
		// payload's first block takes inc32(J0) = IV || 2.
		var iv [16]byte
		copy(iv[:], nonce[:12])
		iv[15] = 2
		cipher.NewCTR(b, iv[:]).XORKeyStream(dst, src[:len(dst)])
	}, nil
}

// cipherKey derives the key of one direction (c2s: client to server) as
// go-smb2 does (MS-SMB2 3.2.5.3.1) and says whether the cipher is
// AES-128-GCM (else AES-128-CCM).
func (c *watchConn) cipherKey(n negotiated, preauth [64]byte, c2s bool) (cipher.Block, bool, error) {
	var sk []byte
	if c.sessionKey != nil {
		sk = c.sessionKey()
	}
	if len(sk) == 0 {
		return nil, false, fmt.Errorf("%w: encrypted frame on a session without keys", ErrProtocol)
	}
	key := make([]byte, 16)
	copy(key, sk)
	var k []byte
	useGCM := false
	switch n.dialect {
	case 0x0300, 0x0302:
		ctx := []byte("ServerOut\x00")
		if c2s {
			ctx = []byte("ServerIn \x00")
		}
		k = smbKDF(key, []byte("SMB2AESCCM\x00"), ctx)
	case 0x0311:
		label := []byte("SMBS2CCipherKey\x00")
		if c2s {
			label = []byte("SMBC2SCipherKey\x00")
		}
		k = smbKDF(key, label, preauth[:])
		switch n.cipher {
		case 1: // AES-128-CCM
		case 2: // AES-128-GCM
			useGCM = true
		default:
			return nil, false, fmt.Errorf("%w: encrypted frame without a negotiated cipher", ErrProtocol)
		}
	default:
		return nil, false, fmt.Errorf("%w: encrypted frame on dialect %v", ErrProtocol, Dialect(n.dialect))
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, false, err
	}
	return b, useGCM, nil
}

// smbKDF is SP 800-108 KDF in counter mode with HMAC-SHA256, L = 128, as
// SMB 3 uses it.
func smbKDF(ki, label, context []byte) []byte {
	h := hmac.New(sha256.New, ki)
	h.Write([]byte{0, 0, 0, 1})
	h.Write(label)
	h.Write([]byte{0})
	h.Write(context)
	h.Write([]byte{0, 0, 0, 0x80})
	return h.Sum(nil)[:16]
}

// Write implements net.Conn. It reads the client's requests on their
// way out: until the session is set up, the NEGOTIATE and SESSION_SETUP
// requests for the preauth hash; after that, the length of each WRITE
// (decrypting the frame when go-smb2 encrypted it), because go-smb2
// slices its buffer with the Count of the WRITE response.
func (c *watchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.vArmed {
		if !c.vHeld && len(p) == 4 {
			c.vHeld = true // the length changes with the request
			c.mu.Unlock()
			return len(p), nil
		}
		if c.vHeld {
			c.vArmed, c.vHeld = false, false
			f, err := c.rewriteValidate(p)
			c.mu.Unlock()
			if err != nil {
				return 0, err
			}
			if _, err := c.Conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(f))), f...)); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	switch {
	case c.wneed == 0 && len(c.wbuf) == 0 && len(p) == 4:
		// go-smb2 writes the Direct TCP header, then the frame.
		c.wneed = int(binary.BigEndian.Uint32(p) & 0xFFFFFF)
	case c.wneed > 0 && len(c.wbuf) == 0 && len(p) == c.wneed:
		c.wneed = 0
		c.outbound(p)
	default:
		if c.wneed > 0 {
			c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(c.wneed))
			c.wneed = 0
		}
		c.wbuf = append(c.wbuf, p...)
		for len(c.wbuf) >= 4 {
			size := int(binary.BigEndian.Uint32(c.wbuf) & 0xFFFFFF)
			if len(c.wbuf) < 4+size {
				break
			}
			c.outbound(c.wbuf[4 : 4+size])
			c.wbuf = c.wbuf[4+size:]
		}
		if len(c.wbuf) == 0 {
			c.wbuf = nil
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// outboundPeek is how much of an encrypted request outbound decrypts.
const outboundPeek = 4096

// outbound reads one request frame of the client. Called with mu held.
func (c *watchConn) outbound(f []byte) {
	if isTransform(f) {
		if !c.n.setupDone || len(f) < 53 {
			return
		}
		if c.peek == nil {
			p, err := c.peeker(c.n, c.preauth)
			if err != nil {
				return
			}
			c.peek = p
		}
		// Only the headers are read: the first outboundPeek bytes are
		// decrypted (go-smb2 sends no compounds, so a request's header
		// and a WRITE's length are at the start), not the whole frame
		// with its megabyte of data, which go-smb2 has just encrypted.
		n := min(len(f)-52, outboundPeek)
		if cap(c.peekBuf) < n {
			c.peekBuf = make([]byte, outboundPeek)
		}
		plain := c.peekBuf[:n]
		c.peek(plain, f[52:], f[20:32])
		f = plain
	}
	for off := 0; off+smb2HeaderSize <= len(f); {
		h := f[off:]
		if h[0] != 0xFE || h[1] != 'S' || h[2] != 'M' || h[3] != 'B' {
			return
		}
		switch cmd := binary.LittleEndian.Uint16(h[12:]); {
		case cmd == cmdNegotiate && !c.n.setupDone:
			c.preauth = [64]byte{}
			c.hashPreauth(f)
			c.negReq = append(c.negReq[:0], h...)
		case cmd == cmdSessionSetup && !c.n.setupDone:
			c.hashPreauth(f)
		case cmd == cmdWrite && len(h) >= smb2HeaderSize+8:
			if c.writes == nil {
				c.writes = map[uint64]uint32{}
			}
			c.writes[binary.LittleEndian.Uint64(h[24:])] = binary.LittleEndian.Uint32(h[smb2HeaderSize+4:])
		}
		next := int(binary.LittleEndian.Uint32(h[20:]))
		if next < smb2HeaderSize {
			return
		}
		off += next
	}
}

// checkEncryptFlags refuses a SESSION_SETUP or TREE_CONNECT response that
// asks for encryption (ENCRYPT_DATA) where go-smb2 has no keys to encrypt
// with: SMB 2.x, 3.1.1 without a cipher, or a guest or anonymous session.
// go-smb2 would obey it and dereference its missing encrypter.
func (c *watchConn) checkEncryptFlags(f []byte) error {
	c.mu.Lock()
	n := c.n
	c.mu.Unlock()
	keys := n.dialect == 0x0300 || n.dialect == 0x0302 || (n.dialect == 0x0311 && (n.cipher == 1 || n.cipher == 2))
	for off := 0; off+smb2HeaderSize <= len(f); {
		h := f[off:]
		status := NTStatus(binary.LittleEndian.Uint32(h[8:]))
		body := h[smb2HeaderSize:]
		if status == StatusSuccess {
			switch binary.LittleEndian.Uint16(h[12:]) {
			case cmdSessionSetup:
				if len(body) >= 4 {
					fl := SessionFlags(binary.LittleEndian.Uint16(body[2:]))
					if fl&SessionEncryptData != 0 && (!keys || fl&(SessionIsGuest|SessionIsNull) != 0) {
						return fmt.Errorf("%w: the server asks to encrypt a session that has no keys", ErrProtocol)
					}
				}
			case cmdTreeConnect:
				if len(body) >= 8 && binary.LittleEndian.Uint32(body[4:])&shareFlagEncryptData != 0 &&
					(!keys || n.sessionFlags&(SessionIsGuest|SessionIsNull) != 0) {
					return fmt.Errorf("%w: the server asks to encrypt a share on a session that has no keys", ErrProtocol)
				}
			}
		}
		next := int(binary.LittleEndian.Uint32(h[20:]))
		if next < smb2HeaderSize {
			return nil
		}
		off += next
	}
	return nil
}

// checkWrites checks the WRITE responses of a checked plaintext frame
// against the requests: go-smb2 slices its buffer with Count.
func (c *watchConn) checkWrites(f []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for off := 0; off+smb2HeaderSize <= len(f); {
		h := f[off:]
		status := NTStatus(binary.LittleEndian.Uint32(h[8:]))
		if binary.LittleEndian.Uint16(h[12:]) == cmdWrite && status != StatusPending {
			id := binary.LittleEndian.Uint64(h[24:])
			want, ok := c.writes[id]
			delete(c.writes, id)
			if status == StatusSuccess && len(h) >= smb2HeaderSize+8 {
				if got := binary.LittleEndian.Uint32(h[smb2HeaderSize+4:]); !ok || got > want {
					return fmt.Errorf("%w: WRITE response counts %d bytes of a %d-byte write", ErrProtocol, got, want)
				}
			}
		}
		next := int(binary.LittleEndian.Uint32(h[20:]))
		if next < smb2HeaderSize {
			return nil
		}
		off += next
	}
	return nil
}

func (c *watchConn) hashPreauth(msg []byte) {
	h := sha512.New()
	h.Write(c.preauth[:])
	h.Write(msg)
	h.Sum(c.preauth[:0])
}

// checkFrame checks a plaintext frame: a chain of SMB2 messages whose
// headers and NextCommand offsets are consistent with the frame, each of
// whose variable parts lies inside it (checkMessage). An encrypted frame
// must have been decrypted first.
func checkFrame(f []byte) error {
	for off := 0; ; {
		h := f[off:]
		if len(h) < smb2HeaderSize || h[0] != 0xFE || h[1] != 'S' || h[2] != 'M' || h[3] != 'B' || binary.LittleEndian.Uint16(h[4:]) != smb2HeaderSize {
			return fmt.Errorf("%w: not an SMB2 message", ErrProtocol)
		}
		next := int(binary.LittleEndian.Uint32(h[20:]))
		if next == 0 {
			return checkMessage(h)
		}
		if next < smb2HeaderSize || next%8 != 0 || next >= len(h) {
			return fmt.Errorf("%w: bad NextCommand %d", ErrProtocol, next)
		}
		if err := checkMessage(h[:next]); err != nil {
			return err
		}
		off += next
	}
}

// inspect reads the headers of one checked plaintext frame. raw is the
// frame as received (the preauth hash covers it), enc whether it came
// encrypted.
func (c *watchConn) inspect(f, raw []byte, enc bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for off := 0; off+smb2HeaderSize <= len(f); {
		h := f[off:]
		status := NTStatus(binary.LittleEndian.Uint32(h[8:]))
		cmd := binary.LittleEndian.Uint16(h[12:])
		flags := binary.LittleEndian.Uint32(h[16:])
		next := int(binary.LittleEndian.Uint32(h[20:]))
		body := h[smb2HeaderSize:]
		if next >= smb2HeaderSize && next-smb2HeaderSize <= len(body) {
			body = body[:next-smb2HeaderSize]
		}
		switch {
		case c.n.setupDone:
			c.n.framesIn++
			switch {
			case enc:
				c.n.encIn++
			case flags&flagSigned != 0:
				c.n.signedIn++
			case status != StatusPending:
				c.n.unsignedIn++
			}
		case cmd == cmdNegotiate:
			c.negotiate(status, h, body)
			if c.n.dialect == 0x0311 && !enc {
				c.hashPreauth(raw)
			}
		case cmd == cmdSessionSetup:
			c.n.setupStatus = status
			if status == StatusMoreProcessingRequired && !enc {
				c.hashPreauth(raw)
			}
			if status == StatusSuccess && len(body) >= 4 {
				c.n.sessionFlags = SessionFlags(binary.LittleEndian.Uint16(body[2:]))
				c.n.sessionID = binary.LittleEndian.Uint64(h[40:])
				c.n.sessionIDKnown = true
				c.n.setupDone = true
			} else if status == StatusMoreProcessingRequired {
				// go-smb2 checks the session id of encrypted frames
				// against this one.
				c.n.sessionID = binary.LittleEndian.Uint64(h[40:])
				c.n.sessionIDKnown = true
			}
		}
		if next < smb2HeaderSize {
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
