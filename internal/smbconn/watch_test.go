package smbconn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func smb2Header(cmd uint16, status NTStatus, flags uint32, next uint32) []byte {
	h := make([]byte, 64)
	copy(h, "\xfeSMB")
	binary.LittleEndian.PutUint16(h[4:], 64)
	binary.LittleEndian.PutUint32(h[8:], uint32(status))
	binary.LittleEndian.PutUint16(h[12:], cmd)
	binary.LittleEndian.PutUint32(h[16:], flags|flagServerToRedir)
	binary.LittleEndian.PutUint32(h[20:], next)
	return h
}

func negotiateResponse(dialect uint16, secMode uint16, cipher uint16) []byte {
	body := make([]byte, 64)
	binary.LittleEndian.PutUint16(body, 65)
	binary.LittleEndian.PutUint16(body[2:], secMode)
	binary.LittleEndian.PutUint16(body[4:], dialect)
	binary.LittleEndian.PutUint32(body[24:], capEncryption)
	binary.LittleEndian.PutUint32(body[32:], 8<<20)
	binary.LittleEndian.PutUint32(body[36:], 8<<20)
	msg := append(smb2Header(cmdNegotiate, StatusSuccess, 0, 0), body...)
	if cipher != 0 {
		for len(msg)%8 != 0 {
			msg = append(msg, 0)
		}
		binary.LittleEndian.PutUint16(msg[64+6:], 2)
		binary.LittleEndian.PutUint32(msg[64+60:], uint32(len(msg)))
		// A preauth context first (skipped), then the cipher.
		msg = append(msg, 1, 0, 6, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0)
		msg = append(msg, 2, 0, 4, 0, 0, 0, 0, 0, 1, 0)
		msg = binary.LittleEndian.AppendUint16(msg, cipher)
	}
	return msg
}

func sessionSetupResponse(status NTStatus, flags SessionFlags) []byte {
	body := make([]byte, 8)
	binary.LittleEndian.PutUint16(body, 9)
	binary.LittleEndian.PutUint16(body[2:], uint16(flags))
	return append(smb2Header(cmdSessionSetup, status, 0, 0), body...)
}

func frame(msg []byte) []byte {
	f := binary.BigEndian.AppendUint32(nil, uint32(len(msg)))
	return append(f, msg...)
}

// feed pushes stream through a watchConn reading in chunks of the given
// size and returns what the watcher learned.
func feed(t *testing.T, stream []byte, chunk int) negotiated {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		_, _ = b.Write(stream)
		_ = b.Close()
	}()
	w := newWatchConn(a)
	got, err := io.ReadAll(struct{ io.Reader }{readerFunc(func(p []byte) (int, error) {
		return w.Read(p[:min(len(p), chunk)])
	})})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, stream) {
		t.Fatal("watchConn changed the bytes")
	}
	return w.snapshot()
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestWatchConnReadsSessionFlags(t *testing.T) {
	var stream []byte
	stream = append(stream, frame(negotiateResponse(0x0311, securityModeSigningReq|1, 2))...)
	stream = append(stream, frame(sessionSetupResponse(StatusMoreProcessingRequired, 0))...)
	stream = append(stream, frame(sessionSetupResponse(StatusSuccess, SessionIsGuest|SessionEncryptData))...)
	signed := smb2Header(3, StatusSuccess, flagSigned, 0)
	stream = append(stream, frame(append(signed, make([]byte, 1000)...))...)
	stream = append(stream, frame(append([]byte("\xfdSMB"), make([]byte, 80)...))...)
	for _, chunk := range []int{1, 3, 4, 7, 64, 1 << 20} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			n := feed(t, stream, chunk)
			if !n.seen || n.dialect != 0x0311 || n.securityMode&securityModeSigningReq == 0 || n.cipher != 2 || n.maxWrite != 8<<20 {
				t.Fatalf("negotiate: %+v", n)
			}
			if !n.setupDone || n.sessionFlags != SessionIsGuest|SessionEncryptData || n.setupStatus != StatusSuccess {
				t.Fatalf("session setup: %+v", n)
			}
			if n.framesIn != 2 || n.signedIn != 1 || n.encIn != 1 {
				t.Fatalf("traffic: %+v", n)
			}
		})
	}
}

func TestWatchConnFailedSetupAndCompound(t *testing.T) {
	// A compounded frame: an unrelated response, then the SESSION_SETUP.
	first := append(smb2Header(5, StatusSuccess, 0, 72), make([]byte, 8)...)
	stream := frame(append(first, sessionSetupResponse(StatusLogonFailure, 0)...))
	n := feed(t, stream, 5)
	if n.setupDone || n.setupStatus != StatusLogonFailure {
		t.Fatalf("%+v", n)
	}
	// Garbage and inconsistent headers fail the read with ErrProtocol
	// (go-smb2 would panic on them).
	for i, junk := range [][]byte{frame(nil), frame([]byte("\xfeSM")), frame(smb2Header(1, 0, 0, 0xFFFFFFFF)),
		frame(smb2Header(1, 0, 0, 64)), frame(bytes.Repeat([]byte{0xfe}, 200)), {1, 0, 0, 0}, frame([]byte("\xfdSMB"))} {
		a, b := net.Pipe()
		go func() { _, _ = b.Write(junk); _ = b.Close() }()
		_, err := io.ReadAll(newWatchConn(a))
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("junk %d: err = %v", i, err)
		}
	}
}

func TestDialRefusedAndBadInput(t *testing.T) {
	// Find a closed loopback port: listen, note the port, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	_, err = Dial(context.Background(), "127.0.0.1", Auth{User: "u", Password: "pw"}, Options{Port: port})
	var de *DialError
	if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrFiltered) || !errors.As(err, &de) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Dial(context.Background(), "", Auth{User: "u"}, Options{}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("empty host: %v", err)
	}
	if _, err := Dial(context.Background(), "127.0.0.1", Auth{}, Options{}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("no user: %v", err)
	}
}

// A server that accepts TCP but never answers must not hang Dial past
// its context, and must not be reported as unreachable.
func TestDialSilentServerHonoursContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, "127.0.0.1", Auth{User: "u", Password: "pw"}, Options{Port: l.Addr().(*net.TCPAddr).Port})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Dial took %v", d)
	}
	var e *Error
	if !errors.As(err, &e) || e.Op != "negotiate" {
		t.Fatalf("op: %v", err)
	}
	select {
	case c := <-accepted:
		c.Close()
	default:
	}
}

// A server that speaks garbage gets ErrProtocol or a lost connection, never a panic.
func TestDialGarbageServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Read(make([]byte, 4096))
		_, _ = c.Write(frame(bytes.Repeat([]byte{0x41}, 100)))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = Dial(ctx, "127.0.0.1", Auth{User: "u", Password: "pw"}, Options{Port: l.Addr().(*net.TCPAddr).Port})
	if err == nil || errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v", err)
	}
}

func TestAuthNeverPrintsSecret(t *testing.T) {
	const secret = "Sup3r-S3cret"
	a := Auth{User: "alice", Domain: "CORP", Password: secret, NTHash: []byte(secret)}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "auth", a)
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a), fmt.Sprintf("%v", &a), fmt.Sprintf("%x", a), buf.String()} {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
			t.Fatalf("secret in %q", s)
		}
		if !strings.Contains(s, "alice") {
			t.Fatalf("user missing in %q", s)
		}
	}
}

func TestNTStatusIsError(t *testing.T) {
	err := &Error{Op: "session setup", Err: StatusLogonFailure}
	if !errors.Is(err, StatusLogonFailure) || errors.Is(err, StatusNTLMBlocked) {
		t.Fatal("errors.Is on NTStatus")
	}
	if StatusNTLMBlocked.String() != "STATUS_NTLM_BLOCKED" || NTStatus(0xC0001234).String() != "NTSTATUS 0xC0001234" {
		t.Fatal("String")
	}
}

func TestMapErrorKeepsOSAndStatus(t *testing.T) {
	for _, tc := range []struct {
		in     error
		os     error
		status NTStatus
	}{
		{&os.PathError{Op: "open", Path: "x", Err: os.ErrNotExist}, os.ErrNotExist, StatusObjectNameNotFound},
		{os.ErrPermission, os.ErrPermission, StatusAccessDenied},
		{os.ErrExist, os.ErrExist, StatusObjectNameCollision},
	} {
		err := MapError(tc.in)
		if !errors.Is(err, tc.os) || !errors.Is(err, tc.status) || errors.Is(err, StatusNTLMBlocked) {
			t.Errorf("%v -> %v", tc.in, err)
		}
	}
	if err := MapError(context.Canceled); err != context.Canceled {
		t.Errorf("foreign error changed: %v", err)
	}
}

// FuzzWatchConn feeds arbitrary server streams through the watcher: it
// must never panic, and it either passes the bytes on unchanged or fails
// with ErrProtocol (or a short-read error at the end of the stream).
func FuzzWatchConn(f *testing.F) {
	f.Add(frame(negotiateResponse(0x0311, 3, 2)))
	f.Add(frame(sessionSetupResponse(StatusSuccess, SessionIsGuest)))
	f.Add(frame(append(smb2Header(5, 0, 0, 72), append(make([]byte, 8), sessionSetupResponse(StatusLogonFailure, 0)...)...)))
	f.Add([]byte{0, 0, 0, 4, 0xfd, 'S', 'M', 'B'})
	f.Fuzz(func(t *testing.T, stream []byte) {
		a, b := net.Pipe()
		go func() { _, _ = b.Write(stream); _ = b.Close() }()
		got, err := io.ReadAll(newWatchConn(a))
		if err == nil && !bytes.Equal(got, stream) {
			t.Fatal("bytes changed")
		}
		if err != nil && !errors.Is(err, ErrProtocol) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error %v", err)
		}
		if err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		// Whatever passed before the error was whole, checked frames.
		if len(got) > len(stream) || !bytes.Equal(got, stream[:len(got)]) {
			t.Fatal("prefix changed")
		}
	})
}
