package smbconn

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 3610, packet vector #1 (13-byte nonce, 8-byte tag): the generic
// CCM construction that SMB 3 instantiates with an 11-byte nonce and a
// 16-byte tag.
func TestCCMVector(t *testing.T) {
	b, _ := aes.NewCipher(unhex(t, "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"))
	c := &ccm{b: b, nonce: 13, tag: 8}
	nonce := unhex(t, "00000003020100a0a1a2a3a4a5")
	ad := unhex(t, "0001020304050607")
	plain := unhex(t, "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e")
	want := unhex(t, "588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0")
	got := c.Seal(nil, nonce, plain, ad)
	if !bytes.Equal(got, want) {
		t.Fatalf("seal\n got %x\nwant %x", got, want)
	}
	back, err := c.Open(nil, nonce, got, ad)
	if err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("open: %v", err)
	}
}

func TestCCMRoundTripAndTamper(t *testing.T) {
	b, _ := aes.NewCipher(bytes.Repeat([]byte{1}, 16))
	c := newCCM(b, 11)
	nonce := bytes.Repeat([]byte{2}, 11)
	ad := bytes.Repeat([]byte{3}, 32)
	for _, n := range []int{0, 1, 15, 16, 17, 1000} {
		plain := bytes.Repeat([]byte{byte(n)}, n)
		ct := c.Seal(nil, nonce, plain, ad)
		if got, err := c.Open(nil, nonce, ct, ad); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d: %v", n, err)
		}
		for i := range ct {
			bad := bytes.Clone(ct)
			bad[i] ^= 0x40
			if _, err := c.Open(nil, nonce, bad, ad); err == nil {
				t.Fatalf("%d: a flipped bit at %d was accepted", n, i)
			}
		}
		if _, err := c.Open(nil, nonce, ct, ad[1:]); err == nil {
			t.Fatalf("%d: other additional data accepted", n)
		}
	}
}

// RFC 4493, examples 1 to 3.
func TestAESCMACVectors(t *testing.T) {
	b, _ := aes.NewCipher(unhex(t, "2b7e151628aed2a6abf7158809cf4f3c"))
	msg := unhex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411")
	for _, c := range []struct {
		n    int
		want string
	}{{0, "bb1d6929e95937287fa37d129b756746"}, {16, "070a16b46b4d4144f79bdd9dd04a287c"}, {40, "dfa66747de9ae63030ca32611497c827"}} {
		if got := aesCMAC(b, msg[:c.n]); hex.EncodeToString(got[:]) != c.want {
			t.Errorf("%d bytes: %x, want %s", c.n, got, c.want)
		}
	}
}
