package adauth

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// closedPort returns a loopback port with nothing listening.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// nbtRefuser is a NetBIOS session service that answers every SESSION
// REQUEST with answer and counts them.
func nbtRefuser(t *testing.T, answer []byte) (port int, requests *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	requests = new(atomic.Int32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var hdr [4]byte
			if _, err := io.ReadFull(c, hdr[:]); err == nil && hdr[0] == 0x81 {
				requests.Add(1)
				_, _ = io.CopyN(io.Discard, c, int64(hdr[2])<<8|int64(hdr[3]))
				_, _ = c.Write(answer)
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port, requests
}

func TestAuthenticateTransportFallback(t *testing.T) {
	creds, _ := Parse("admin", "secret-pw")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("both refused", func(t *testing.T) {
		a := &SMBAuthenticator{Port: closedPort(t), NetBIOSPort: closedPort(t)}
		_, err := a.Authenticate(ctx, "127.0.0.1", creds)
		var ae *AuthError
		if !errors.As(err, &ae) || !errors.Is(err, ErrUnreachable) || ae.Diagnosis.Code != diag.FirewallRefused {
			t.Fatalf("err %v", err)
		}
		if !strings.Contains(ae.Diagnosis.Summary, "refused the connection on TCP port 139") || !errors.Is(err, smbconn.ErrRefused) {
			t.Fatalf("diagnosis %v", ae.Diagnosis)
		}
		if strings.Contains(err.Error(), "secret-pw") {
			t.Fatal("secret in error")
		}
	})

	t.Run("139 refuses the session", func(t *testing.T) {
		port, n := nbtRefuser(t, []byte{0x83, 0, 0, 1, 0x83})
		a := &SMBAuthenticator{Port: closedPort(t), NetBIOSPort: port}
		_, err := a.Authenticate(WithExpectedName(ctx, "pc7.corp.example"), "127.0.0.1", creds)
		var ae *AuthError
		var ne *smbconn.NBTSessionError
		if !errors.As(err, &ae) || ae.Kind != ErrUnreachable || ae.Diagnosis.Code != diag.NetBIOSSessionRefused || !errors.As(err, &ne) || ne.CalledName != "PC7" {
			t.Fatalf("err %v (%v)", err, ae)
		}
		if !strings.Contains(ae.Diagnosis.Summary, "insufficient resources") || n.Load() != 1 {
			t.Fatalf("diagnosis %v, %d requests", ae.Diagnosis, n.Load())
		}
	})

	t.Run("139 retargets", func(t *testing.T) {
		port, _ := nbtRefuser(t, []byte{0x84, 0, 0, 6, 192, 0, 2, 1, 0, 139})
		a := &SMBAuthenticator{Port: closedPort(t), NetBIOSPort: port}
		_, err := a.Authenticate(ctx, "127.0.0.1", creds)
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Diagnosis.Code != diag.NetBIOSSessionRefused || !strings.Contains(ae.Diagnosis.Summary, "192.0.2.1:139") {
			t.Fatalf("err %v (%v)", err, ae)
		}
	})

	t.Run("139 never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				accepted <- c
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			select {
			case c := <-accepted:
				c.Close()
			default:
			}
		})
		// The session request gets the connect budget (DialTimeout),
		// well inside the caller's deadline.
		a := &SMBAuthenticator{Port: closedPort(t), NetBIOSPort: ln.Addr().(*net.TCPAddr).Port, DialTimeout: 500 * time.Millisecond}
		_, err = a.Authenticate(ctx, "127.0.0.1", creds)
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Kind != ErrUnreachable || ae.Diagnosis.Code != diag.NetBIOSSessionRefused ||
			!strings.Contains(ae.Diagnosis.Summary, "did not answer the NetBIOS session request") || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err %v (%v)", err, ae)
		}
	})

	t.Run("445 only", func(t *testing.T) {
		port, n := nbtRefuser(t, []byte{0x83, 0, 0, 1, 0x8F})
		a := &SMBAuthenticator{Port: closedPort(t), NetBIOSPort: port, Transports: []string{TransportTCP445}}
		_, err := a.Authenticate(ctx, "127.0.0.1", creds)
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Diagnosis.Code != diag.FirewallRefused || strings.Contains(ae.Diagnosis.Summary, "139") || n.Load() != 0 {
			t.Fatalf("err %v (%v), %d requests to 139", err, ae, n.Load())
		}
	})

	t.Run("no fallback after the logon started", func(t *testing.T) {
		// 445 answers with something that is not SMB: the failure is
		// not "unreachable", so 139 is not tried.
		junk, _ := nbtRefuser(t, nil)
		port, n := nbtRefuser(t, []byte{0x83, 0, 0, 1, 0x8F})
		a := &SMBAuthenticator{Port: junk, NetBIOSPort: port}
		_, err := a.Authenticate(ctx, "127.0.0.1", creds)
		if err == nil || errors.Is(err, ErrUnreachable) || n.Load() != 0 {
			t.Fatalf("err %v, %d requests to 139", err, n.Load())
		}
	})

	t.Run("unknown transport", func(t *testing.T) {
		_, err := (&SMBAuthenticator{Transports: []string{"smb1"}}).Authenticate(ctx, "127.0.0.1", creds)
		if !errors.Is(err, smbconn.ErrBadInput) {
			t.Fatalf("err %v", err)
		}
	})
}
