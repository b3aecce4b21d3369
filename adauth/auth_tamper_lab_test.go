package adauth

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// tamperProxy forwards one loopback listener to a lab target's port 445
// and flips the last byte of the first server frame that carries SMB2
// command cmd (after the session is set up), leaving its header intact.
type tamperProxy struct {
	l      net.Listener
	target string
	cmd    uint16
	// encrypted: tamper with the first SMB3 transform frame instead.
	encrypted bool
	mu        sync.Mutex
	tampered  int
}

func (p *tamperProxy) serve(t *testing.T) {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			t.Errorf("proxy dial: %v", err)
			return
		}
		go func() { _, _ = io.Copy(s, c); s.Close() }()
		go func() {
			defer c.Close()
			for {
				var hdr [4]byte
				if _, err := io.ReadFull(s, hdr[:]); err != nil {
					return
				}
				body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
				if _, err := io.ReadFull(s, body); err != nil {
					return
				}
				if (p.encrypted && len(body) > 52 && body[0] == 0xFD) || (!p.encrypted && len(body) > 64 && body[0] == 0xFE && binary.LittleEndian.Uint16(body[12:]) == p.cmd) {
					p.mu.Lock()
					if p.tampered == 0 {
						body[len(body)-1] ^= 0x01
						p.tampered++
					}
					p.mu.Unlock()
				}
				if _, err := c.Write(append(hdr[:], body...)); err != nil {
					return
				}
			}
		}()
	}
}

// TestSigningTamperLab proves that a response altered on the wire is
// caught by SMB signing and diagnosed as a signing failure.
func TestSigningTamperLab(t *testing.T) {
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tg := lab.Targets[0]
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const treeConnect = 0x0003
	p := &tamperProxy{l: l, target: net.JoinHostPort(tg.Addr.String(), "445"), cmd: treeConnect}
	go p.serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := &SMBAuthenticator{Port: l.Addr().(*net.TCPAddr).Port, Encryption: EncryptIfServerAsks}
	start := time.Now()
	_, err = a.Authenticate(ctx, "127.0.0.1", labCreds(t, tg.Admin, false))
	var ae *AuthError
	if !errors.Is(err, ErrSigning) || !errors.Is(err, smbconn.ErrSigning) || !errors.As(err, &ae) || ae.Diagnosis.Code != diag.SigningMismatch || ShouldPrompt(err) {
		t.Fatalf("err = %v", err)
	}
	p.mu.Lock()
	n := p.tampered
	p.mu.Unlock()
	if n != 1 {
		t.Fatalf("tampered %d frames", n)
	}
	t.Logf("%v (after %v)", err, time.Since(start))
}

// TestEncryptedTamperLab: on an encrypted session, a frame altered on the
// way fails authentication in smbconn's frame watcher, which decrypts every
// frame before go-smb2 does; the logon fails at once as a signing
// (integrity) failure. (go-smb2 alone drops such a frame, and the request
// ended only with its context.)
func TestEncryptedTamperLab(t *testing.T) {
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tg := lab.Targets[0]
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The session is encrypted, so the command is ciphertext: tamper with
	// the first encrypted frame (the tree connect response).
	p := &tamperProxy{l: l, target: net.JoinHostPort(tg.Addr.String(), "445"), encrypted: true}
	go p.serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = (&SMBAuthenticator{Port: l.Addr().(*net.TCPAddr).Port}).Authenticate(ctx, "127.0.0.1", labCreds(t, tg.Admin, false))
	var ae *AuthError
	if !errors.Is(err, ErrSigning) || !errors.Is(err, smbconn.ErrSigning) || errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ae) || ae.Diagnosis.Code != diag.SigningMismatch || ShouldPrompt(err) {
		t.Fatalf("err = %v", err)
	}
	p.mu.Lock()
	n := p.tampered
	p.mu.Unlock()
	if n != 1 {
		t.Fatalf("tampered %d frames", n)
	}
	t.Logf("%v", err)
}
