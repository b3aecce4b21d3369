package smbconn

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrDowngrade means the negotiation could not be trusted: the server
// negotiated a dialect below Options.MinDialect, or, on SMB 3.0 and 3.0.2,
// FSCTL_VALIDATE_NEGOTIATE_INFO failed or disagreed with what the
// NEGOTIATE response said (a man in the middle stripped dialects,
// capabilities or signing).
var ErrDowngrade = errors.New("smbconn: SMB negotiation downgraded")

const (
	fsctlValidateNegotiateInfo = 0x00140204
	cmdTreeDisconnect          = 0x0004
	ioctlIsFSCTL               = 0x00000001
)

// validateAnswer is what the watcher read from the server's answer to the
// VALIDATE_NEGOTIATE_INFO request it wrote.
type validateAnswer struct {
	seen      bool
	status    NTStatus
	protected bool // signed, or encrypted (and so authenticated)
	out       []byte
}

// armValidate makes the watcher replace the next request that go-smb2
// writes (a TREE_DISCONNECT that validateNegotiate provokes) with an
// FSCTL_VALIDATE_NEGOTIATE_INFO IOCTL on the same tree and message id,
// signed or encrypted as go-smb2 would, because go-smb2 cannot send that
// FSCTL itself.
func (c *watchConn) armValidate() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.negReq
	if len(r) < smb2HeaderSize+36 {
		return fmt.Errorf("%w: the client's NEGOTIATE request was not seen", ErrDowngrade)
	}
	b := r[smb2HeaderSize:]
	count := int(binary.LittleEndian.Uint16(b[2:]))
	if 36+2*count > len(b) {
		return fmt.Errorf("%w: the client's NEGOTIATE request is short", ErrDowngrade)
	}
	// Capabilities, ClientGuid, SecurityMode, DialectCount, Dialects:
	// what this client sent (MS-SMB2 2.2.31.4).
	p := binary.LittleEndian.AppendUint32(nil, binary.LittleEndian.Uint32(b[8:]))
	p = append(p, b[12:28]...)
	p = binary.LittleEndian.AppendUint16(p, binary.LittleEndian.Uint16(b[4:]))
	p = binary.LittleEndian.AppendUint16(p, uint16(count))
	p = append(p, b[36:36+2*count]...)
	c.vPayload = p
	c.vArmed = true
	c.vHeld = false
	c.vAnswer = validateAnswer{}
	return nil
}

// rewriteValidate turns go-smb2's request frame f into the validation
// IOCTL. Called with mu held.
func (c *watchConn) rewriteValidate(f []byte) ([]byte, error) {
	plain, enc := f, false
	if isTransform(f) {
		if c.enc == nil {
			if a, err := c.aead(c.n, c.preauth, true); err == nil {
				c.enc = a
			}
		}
		if c.enc == nil || len(f) < 53 {
			return nil, fmt.Errorf("%w: cannot read the request to replace", ErrDowngrade)
		}
		ct := append(append(make([]byte, 0, len(f)-52+16), f[52:]...), f[4:20]...)
		p, err := c.enc.Open(nil, f[20:20+c.enc.NonceSize()], ct, f[20:52])
		if err != nil {
			return nil, fmt.Errorf("%w: cannot read the request to replace", ErrDowngrade)
		}
		plain, enc = p, true
	}
	if len(plain) < smb2HeaderSize || binary.LittleEndian.Uint16(plain[12:]) != cmdTreeDisconnect {
		return nil, fmt.Errorf("%w: unexpected request while validating", ErrDowngrade)
	}
	msg := append([]byte(nil), plain[:smb2HeaderSize]...)
	binary.LittleEndian.PutUint16(msg[12:], cmdIoctl)
	binary.LittleEndian.PutUint32(msg[16:], binary.LittleEndian.Uint32(msg[16:])&^flagSigned)
	binary.LittleEndian.PutUint32(msg[20:], 0)
	clear(msg[48:64])
	body := make([]byte, 56)
	binary.LittleEndian.PutUint16(body, 57)
	binary.LittleEndian.PutUint32(body[4:], fsctlValidateNegotiateInfo)
	copy(body[8:24], bytes.Repeat([]byte{0xFF}, 16))
	binary.LittleEndian.PutUint32(body[24:], smb2HeaderSize+56)
	binary.LittleEndian.PutUint32(body[28:], uint32(len(c.vPayload)))
	binary.LittleEndian.PutUint32(body[44:], 24)
	binary.LittleEndian.PutUint32(body[48:], ioctlIsFSCTL)
	msg = append(append(msg, body...), c.vPayload...)
	c.vMsgID = binary.LittleEndian.Uint64(msg[24:])
	if enc {
		nonce := make([]byte, c.enc.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		t := make([]byte, 52)
		copy(t, "\xfdSMB")
		copy(t[20:], nonce)
		binary.LittleEndian.PutUint32(t[36:], uint32(len(msg)))
		binary.LittleEndian.PutUint16(t[42:], 1)
		copy(t[44:52], f[44:52])
		ct := c.enc.Seal(nil, nonce, msg, t[20:52])
		copy(t[4:20], ct[len(ct)-16:])
		return append(t, ct[:len(ct)-16]...), nil
	}
	sk := c.sessionKey()
	key := make([]byte, 16)
	copy(key, sk)
	blk, err := aes.NewCipher(smbKDF(key, []byte("SMB2AESCMAC\x00"), []byte("SmbSign\x00")))
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint32(msg[16:], binary.LittleEndian.Uint32(msg[16:])|flagSigned)
	sig := aesCMAC(blk, msg)
	copy(msg[48:64], sig[:])
	return msg, nil
}

// noteValidate records the answer to the validation request in a checked
// plaintext frame.
func (c *watchConn) noteValidate(f []byte, enc bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vMsgID == 0 || c.vAnswer.seen {
		return
	}
	for off := 0; off+smb2HeaderSize <= len(f); {
		h := f[off:]
		next := int(binary.LittleEndian.Uint32(h[20:]))
		status := NTStatus(binary.LittleEndian.Uint32(h[8:]))
		if binary.LittleEndian.Uint64(h[24:]) == c.vMsgID && status != StatusPending {
			a := validateAnswer{seen: true, status: status, protected: enc || binary.LittleEndian.Uint32(h[16:])&flagSigned != 0}
			msg := h
			if next >= smb2HeaderSize && next <= len(h) {
				msg = h[:next]
			}
			if binary.LittleEndian.Uint16(h[12:]) == cmdIoctl && len(msg) >= smb2HeaderSize+48 {
				off, n := u32(msg[smb2HeaderSize:], 32), u32(msg[smb2HeaderSize:], 36)
				if off >= smb2HeaderSize+48 && off+n <= uint64(len(msg)) {
					a.out = append([]byte(nil), msg[off:off+n]...)
				}
			}
			c.vAnswer = a
			return
		}
		if next < smb2HeaderSize {
			return
		}
		off += next
	}
}

// validateNegotiate proves to an SMB 3.0 or 3.0.2 session that nobody
// changed the NEGOTIATE exchange (MS-SMB2 3.2.5.14.12 and 3.3.5.15.12):
// it sends FSCTL_VALIDATE_NEGOTIATE_INFO with what this client offered,
// signed (or encrypted), on an IPC$ tree, and compares the server's
// signed answer with the NEGOTIATE response that go-smb2 acted on. A
// server that sees other values than it received drops the connection.
// Either way the result is ErrDowngrade. SMB 3.1.1 needs none of this:
// its preauth integrity hash makes a changed exchange break the keys.
func (s *Session) validateNegotiate(ctx context.Context) error {
	sh, err := s.sess.WithContext(ctx).Mount(s.SharePath("IPC$"))
	if err != nil {
		return fmt.Errorf("%w: IPC$ for VALIDATE_NEGOTIATE_INFO: %w", ErrDowngrade, mapErr(err, 0))
	}
	if err := s.conn.armValidate(); err != nil {
		return err
	}
	// go-smb2 sends a TREE_DISCONNECT, which the watcher replaces; go-smb2
	// then verifies the answer's signature and fails on its command.
	uerr := sh.WithContext(ctx).Umount()
	s.conn.mu.Lock()
	a := s.conn.vAnswer
	s.conn.vArmed = false
	s.conn.mu.Unlock()
	n := s.conn.snapshot()
	switch {
	case !a.seen:
		return fmt.Errorf("%w: no answer to VALIDATE_NEGOTIATE_INFO (%v)", ErrDowngrade, mapErr(uerr, 0))
	case uerr == nil || !strings.Contains(uerr.Error(), "expected command"):
		// go-smb2 did not accept the answer as authentic.
		return fmt.Errorf("%w: the answer to VALIDATE_NEGOTIATE_INFO was not verified (%v)", ErrDowngrade, mapErr(uerr, 0))
	case !a.protected:
		return fmt.Errorf("%w: unsigned answer to VALIDATE_NEGOTIATE_INFO", ErrDowngrade)
	case a.status != StatusSuccess:
		return fmt.Errorf("%w: VALIDATE_NEGOTIATE_INFO failed with %v", ErrDowngrade, a.status)
	case len(a.out) < 24:
		return fmt.Errorf("%w: short VALIDATE_NEGOTIATE_INFO answer", ErrDowngrade)
	}
	caps := binary.LittleEndian.Uint32(a.out)
	mode := binary.LittleEndian.Uint16(a.out[20:])
	dialect := binary.LittleEndian.Uint16(a.out[22:])
	var diff []string
	if dialect != n.dialect {
		diff = append(diff, fmt.Sprintf("dialect %v, not %v", Dialect(dialect), Dialect(n.dialect)))
	}
	if caps != n.capabilities {
		diff = append(diff, fmt.Sprintf("capabilities 0x%x, not 0x%x", caps, n.capabilities))
	}
	if mode != n.securityMode {
		diff = append(diff, fmt.Sprintf("security mode 0x%x, not 0x%x", mode, n.securityMode))
	}
	if !bytes.Equal(a.out[4:20], n.serverGUID[:]) {
		diff = append(diff, "another server GUID")
	}
	if len(diff) > 0 {
		return fmt.Errorf("%w: VALIDATE_NEGOTIATE_INFO says %s than the NEGOTIATE response", ErrDowngrade, strings.Join(diff, ", "))
	}
	return nil
}
