package smbconn

import (
	"crypto/cipher"
	"crypto/subtle"
)

// aesCMAC is AES-CMAC (RFC 4493), the signature of SMB 3.0 and 3.0.2
// messages. The frame watcher signs the one request it writes itself
// (FSCTL_VALIDATE_NEGOTIATE_INFO, see validateNegotiate).
func aesCMAC(b cipher.Block, msg []byte) [16]byte {
	var l, k1, k2 [16]byte
	b.Encrypt(l[:], l[:])
	double := func(dst, src *[16]byte) {
		carry := src[0] >> 7
		for i := 0; i < 15; i++ {
			dst[i] = src[i]<<1 | src[i+1]>>7
		}
		dst[15] = src[15] << 1
		if carry != 0 {
			dst[15] ^= 0x87
		}
	}
	double(&k1, &l)
	double(&k2, &k1)
	var x [16]byte
	n := (len(msg) + 15) / 16
	if n == 0 {
		n = 1
	}
	for i := 0; i < n-1; i++ {
		subtle.XORBytes(x[:], x[:], msg[16*i:16*i+16])
		b.Encrypt(x[:], x[:])
	}
	var last [16]byte
	rest := msg[16*(n-1):]
	if len(rest) == 16 {
		subtle.XORBytes(last[:], rest, k1[:])
	} else {
		copy(last[:], rest)
		last[len(rest)] = 0x80
		subtle.XORBytes(last[:], last[:], k2[:])
	}
	subtle.XORBytes(x[:], x[:], last[:])
	b.Encrypt(x[:], x[:])
	return x
}
