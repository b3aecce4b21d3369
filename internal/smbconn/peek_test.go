package smbconn

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"testing"
)

// encryptedWrite returns an encrypted WRITE request of size data bytes
// with message id id, sealed with the client-to-server AEAD of c as
// go-smb2 seals it (tag in the transform header's Signature), and its
// plaintext.
func encryptedWrite(t testing.TB, c *watchConn, n negotiated, id uint64, size int) (frame, plain []byte) {
	t.Helper()
	a, err := c.aead(n, c.preauth, true)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, smb2HeaderSize+48)
	copy(h, "\xfeSMB")
	binary.LittleEndian.PutUint16(h[4:], 64)
	binary.LittleEndian.PutUint16(h[12:], cmdWrite)
	binary.LittleEndian.PutUint64(h[24:], id)
	binary.LittleEndian.PutUint16(h[smb2HeaderSize:], 49)
	binary.LittleEndian.PutUint16(h[smb2HeaderSize+2:], smb2HeaderSize+48)
	binary.LittleEndian.PutUint32(h[smb2HeaderSize+4:], uint32(size))
	data := make([]byte, size)
	_, _ = rand.Read(data)
	plain = append(h, data...)
	tr := make([]byte, 52)
	copy(tr, "\xfdSMB")
	_, _ = rand.Read(tr[20:36])
	binary.LittleEndian.PutUint32(tr[36:], uint32(len(plain)))
	binary.LittleEndian.PutUint16(tr[42:], 1)
	binary.LittleEndian.PutUint64(tr[44:], 7)
	sealed := a.Seal(nil, tr[20:20+a.NonceSize()], plain, tr[20:52])
	copy(tr[4:20], sealed[len(sealed)-16:])
	return append(tr, sealed[:len(sealed)-16]...), plain
}

// TestOutboundPeeksAtEncryptedRequests: the watcher decrypts only the
// start of the client's encrypted requests (the key stream of AES-GCM and
// AES-CCM, no tag check) and still reads the length of a WRITE; the bytes
// it decrypts are the plaintext's, for each cipher and dialect go-smb2
// encrypts with.
func TestOutboundPeeksAtEncryptedRequests(t *testing.T) {
	key := bytes.Repeat([]byte{0x5a}, 16)
	for _, n := range []negotiated{
		{dialect: 0x0311, cipher: 2, setupDone: true},
		{dialect: 0x0311, cipher: 1, setupDone: true},
		{dialect: 0x0300, setupDone: true},
	} {
		t.Run(fmt.Sprintf("dialect %#x cipher %d", n.dialect, n.cipher), func(t *testing.T) {
			c := &watchConn{sessionKey: func() []byte { return key }, n: n}
			_, _ = rand.Read(c.preauth[:])
			for i, size := range []int{1 << 20, 100, 0} {
				id := uint64(40 + i)
				f, plain := encryptedWrite(t, c, n, id, size)
				c.outbound(f)
				if got, ok := c.writes[id]; !ok || got != uint32(size) {
					t.Fatalf("WRITE %d of %d bytes: recorded %d, %v (writes %v)", id, size, got, ok, c.writes)
				}
				want := plain[:min(len(plain), outboundPeek)]
				if !bytes.Equal(c.peekBuf[:len(want)], want) {
					t.Fatalf("WRITE %d: the decrypted start differs from the plaintext", id)
				}
			}
			// A frame sealed with another key reads as garbage: nothing
			// is recorded (the response's check then fails, as before).
			other := &watchConn{sessionKey: func() []byte { return bytes.Repeat([]byte{1}, 16) }, n: n, preauth: c.preauth}
			f, _ := encryptedWrite(t, other, n, 99, 10)
			c.outbound(f)
			if _, ok := c.writes[99]; ok {
				t.Fatal("a WRITE under another key was recorded")
			}
		})
	}
}

// BenchmarkOutboundEncryptedWrite is the watcher's cost per encrypted
// 1 MiB WRITE that go-smb2 sends (deploy's chunk size), AES-128-GCM.
func BenchmarkOutboundEncryptedWrite(b *testing.B) {
	n := negotiated{dialect: 0x0311, cipher: 2, setupDone: true}
	c := &watchConn{sessionKey: func() []byte { return bytes.Repeat([]byte{0x5a}, 16) }, n: n}
	f, _ := encryptedWrite(b, c, n, 1, 1<<20)
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for b.Loop() {
		c.outbound(f)
	}
}
