package smbconn

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// ccm is AES-CCM (NIST SP 800-38C, RFC 3610) with a 16-byte tag, as SMB 3
// uses it (11-byte nonce). The frame watcher needs it to decrypt what the
// server sends on SMB 3.0 and 3.0.2 sessions, and on 3.1.1 sessions that
// chose AES-128-CCM; the standard library has only GCM. It handles
// messages shorter than 2^32 bytes, which covers SMB's 24-bit frames.
type ccm struct {
	b     cipher.Block
	nonce int
	tag   int
}

var errCCMOpen = errors.New("smbconn: ccm: message authentication failed")

// newCCM returns AES-CCM with a 16-byte tag and the given nonce size
// (7 to 11 bytes; SMB uses 11).
func newCCM(b cipher.Block, nonceSize int) *ccm { return &ccm{b: b, nonce: nonceSize, tag: 16} }

func (c *ccm) NonceSize() int { return c.nonce }
func (c *ccm) Overhead() int  { return c.tag }

// mac computes the CBC-MAC of B0, the encoded additional data and the
// plaintext.
func (c *ccm) mac(nonce, ad, plain []byte) [16]byte {
	l := 15 - c.nonce
	var x, blk [16]byte
	blk[0] = byte((c.tag-2)/2)<<3 | byte(l-1)
	if len(ad) > 0 {
		blk[0] |= 0x40
	}
	copy(blk[1:], nonce)
	n := uint64(len(plain))
	for i := 15; i > c.nonce; i-- {
		blk[i] = byte(n)
		n >>= 8
	}
	c.b.Encrypt(x[:], blk[:])
	feed := func(p []byte) {
		for len(p) > 0 {
			var b [16]byte
			k := copy(b[:], p)
			p = p[k:]
			subtle.XORBytes(x[:], x[:], b[:])
			c.b.Encrypt(x[:], x[:])
		}
	}
	if len(ad) > 0 {
		// The length prefix (2 bytes below 0xFF00, else 0xFFFE and 4
		// bytes) and the data, padded to a block.
		var a []byte
		if len(ad) < 0xFF00 {
			a = binary.BigEndian.AppendUint16(nil, uint16(len(ad)))
		} else {
			a = binary.BigEndian.AppendUint32([]byte{0xFF, 0xFE}, uint32(len(ad)))
		}
		feed(append(a, ad...))
	}
	feed(plain)
	return x
}

// ctr XORs src into dst with the counter stream from counter 1; it
// returns the first counter block's key stream (S0), for the tag.
func (c *ccm) ctr(dst, src, nonce []byte) [16]byte {
	l := 15 - c.nonce
	var ctr, s0, ks [16]byte
	ctr[0] = byte(l - 1)
	copy(ctr[1:], nonce)
	c.b.Encrypt(s0[:], ctr[:])
	for i := uint64(1); len(src) > 0; i++ {
		for j, v := 15, i; j > c.nonce; j, v = j-1, v>>8 {
			ctr[j] = byte(v)
		}
		c.b.Encrypt(ks[:], ctr[:])
		k := subtle.XORBytes(dst, src, ks[:])
		dst, src = dst[k:], src[k:]
	}
	return s0
}

func (c *ccm) Seal(dst, nonce, plain, ad []byte) []byte {
	t := c.mac(nonce, ad, plain)
	out := make([]byte, len(plain)+c.tag)
	s0 := c.ctr(out, plain, nonce)
	subtle.XORBytes(out[len(plain):], t[:c.tag], s0[:c.tag])
	return append(dst, out...)
}

func (c *ccm) Open(dst, nonce, ct, ad []byte) ([]byte, error) {
	if len(ct) < c.tag || len(nonce) != c.nonce {
		return nil, errCCMOpen
	}
	body, tag := ct[:len(ct)-c.tag], ct[len(ct)-c.tag:]
	plain := make([]byte, len(body))
	s0 := c.ctr(plain, body, nonce)
	t := c.mac(nonce, ad, plain)
	var want [16]byte
	subtle.XORBytes(want[:], t[:], s0[:])
	if subtle.ConstantTimeCompare(want[:c.tag], tag) != 1 {
		return nil, errCCMOpen
	}
	return append(dst, plain...), nil
}
