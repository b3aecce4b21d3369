package smbconn

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
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
func feed(t *testing.T, stream []byte, chunk int, sessionKey []byte) negotiated {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		_, _ = b.Write(stream)
		_ = b.Close()
	}()
	w := newWatchConn(a)
	w.sessionKey = func() []byte { return sessionKey }
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
	stream = append(stream, frame(sessionSetupResponse(StatusSuccess, SessionEncryptData))...)
	signed := smb2Header(3, StatusSuccess, flagSigned, 0)
	stream = append(stream, frame(append(signed, make([]byte, 1000)...))...)
	// An encrypted frame, sealed as a SMB 3.1.1 server with AES-128-GCM
	// would: the key hangs on the preauth hash of the messages so far
	// (the server's only, since this stream has no requests).
	key := bytes.Repeat([]byte{7}, 16)
	var pa [64]byte
	for _, m := range [][]byte{negotiateResponse(0x0311, securityModeSigningReq|1, 2), sessionSetupResponse(StatusMoreProcessingRequired, 0)} {
		h := sha512.New()
		h.Write(pa[:])
		h.Write(m)
		h.Sum(pa[:0])
	}
	stream = append(stream, frame(seal(t, 2, smbKDF(key, []byte("SMBS2CCipherKey\x00"), pa[:]), 0, smb2Header(3, StatusSuccess, 0, 0)))...)
	for _, chunk := range []int{1, 3, 4, 7, 64, 1 << 20} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			n := feed(t, stream, chunk, key)
			if !n.seen || n.dialect != 0x0311 || n.securityMode&securityModeSigningReq == 0 || n.cipher != 2 || n.maxWrite != 8<<20 {
				t.Fatalf("negotiate: %+v", n)
			}
			if !n.setupDone || n.sessionFlags != SessionEncryptData || n.setupStatus != StatusSuccess {
				t.Fatalf("session setup: %+v", n)
			}
			if n.framesIn != 2 || n.signedIn != 1 || n.encIn != 1 {
				t.Fatalf("traffic: %+v", n)
			}
		})
	}
}

// seal builds an SMB2 TRANSFORM frame (cipher 1 CCM, 2 GCM) around msg.
func seal(t *testing.T, cipherID int, key []byte, sessionID uint64, msg []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	var aead cipher.AEAD = newCCM(b, 11)
	if cipherID == 2 {
		if aead, err = cipher.NewGCMWithNonceSize(b, 12); err != nil {
			t.Fatal(err)
		}
	}
	f := make([]byte, 52)
	copy(f, "\xfdSMB")
	copy(f[20:], "0123456789ab") // nonce
	binary.LittleEndian.PutUint32(f[36:], uint32(len(msg)))
	binary.LittleEndian.PutUint16(f[42:], 1)
	binary.LittleEndian.PutUint64(f[44:], sessionID)
	ct := aead.Seal(nil, f[20:20+aead.NonceSize()], msg, f[20:52])
	copy(f[4:20], ct[len(ct)-16:])
	return append(f, ct[:len(ct)-16]...)
}

func TestWatchConnFailedSetupAndCompound(t *testing.T) {
	// A compounded frame: an unrelated response, then the SESSION_SETUP.
	first := append(smb2Header(5, StatusSuccess, 0, 72), make([]byte, 8)...)
	stream := frame(append(first, sessionSetupResponse(StatusLogonFailure, 0)...))
	n := feed(t, stream, 5, nil)
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

// Hostile answers from a server that completed the logon: each must fail
// the read with ErrProtocol before go-smb2 sees it.
func TestWatchConnRejectsHostileFrames(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 16)
	setup := append(frame(negotiateResponse(0x0300, 1, 0)), frame(sessionSetupResponse(StatusSuccess, 0))...)
	k30 := smbKDF(key, []byte("SMB2AESCCM\x00"), []byte("ServerOut\x00"))
	read := func(off byte, n uint32, extra int) []byte {
		body := make([]byte, 16+extra)
		binary.LittleEndian.PutUint16(body, 17)
		body[2] = off
		binary.LittleEndian.PutUint32(body[4:], n)
		return append(smb2Header(cmdRead, StatusSuccess, 0, 0), body...)
	}
	ioctl := func(outOff, outN uint32) []byte {
		body := make([]byte, 48)
		binary.LittleEndian.PutUint16(body, 49)
		binary.LittleEndian.PutUint32(body[32:], outOff)
		binary.LittleEndian.PutUint32(body[36:], outN)
		return append(smb2Header(cmdIoctl, StatusSuccess, 0, 0), body...)
	}
	errResp := func(count byte, n, ctxLen uint32) []byte {
		body := make([]byte, 8+8)
		binary.LittleEndian.PutUint16(body, 9)
		body[2] = count
		binary.LittleEndian.PutUint32(body[4:], n)
		binary.LittleEndian.PutUint32(body[8:], ctxLen)
		return append(smb2Header(cmdCreate, StatusAccessDenied, 0, 0), body...)
	}
	ss := func(off, n uint16) []byte {
		m := sessionSetupResponse(StatusMoreProcessingRequired, 0)
		binary.LittleEndian.PutUint16(m[64+4:], off)
		binary.LittleEndian.PutUint16(m[64+6:], n)
		return m
	}
	for name, stream := range map[string][]byte{
		"read 80+0xFFFFFFF0":          append(bytes.Clone(setup), frame(read(80, 0xFFFFFFF0, 0))...),
		"read beyond frame":           append(bytes.Clone(setup), frame(read(80, 100, 10))...),
		"ioctl output wraps":          append(bytes.Clone(setup), frame(ioctl(0x70, 0xFFFFFF90))...),
		"error data wraps":            append(bytes.Clone(setup), frame(errResp(0, 0xFFFFFFF8, 0))...),
		"error context wraps":         append(bytes.Clone(setup), frame(errResp(1, 8, 0xFFFFFFF8))...),
		"session setup buffer wraps":  frame(ss(0xFFF0, 0x20)),
		"encrypted, short plaintext":  append(bytes.Clone(setup), frame(seal(t, 1, k30, 0, []byte("\xfeSMB")))...),
		"encrypted, hostile read":     append(bytes.Clone(setup), frame(seal(t, 1, k30, 0, read(80, 0xFFFFFFF0, 0)))...),
		"encrypted, tampered":         append(bytes.Clone(setup), flip(frame(seal(t, 1, k30, 0, read(80, 0, 0))), 70)...),
		"encrypted, other session":    append(bytes.Clone(setup), frame(seal(t, 1, k30, 5, read(80, 0, 0)))...),
		"encrypted before any logon":  frame(seal(t, 1, k30, 0, read(80, 0, 0))),
		"encrypted on a 2.1 session":  append(append(frame(negotiateResponse(0x0210, 1, 0)), frame(sessionSetupResponse(StatusSuccess, 0))...), frame(seal(t, 1, k30, 0, read(80, 0, 0)))...),
		"encrypt-data session on 2.1": append(frame(negotiateResponse(0x0210, 1, 0)), frame(sessionSetupResponse(StatusSuccess, SessionEncryptData))...),
		"encrypt-data share on 2.1": append(append(frame(negotiateResponse(0x0210, 1, 0)), frame(sessionSetupResponse(StatusSuccess, 0))...),
			frame(func() []byte {
				b := make([]byte, 16)
				binary.LittleEndian.PutUint16(b, 16)
				binary.LittleEndian.PutUint32(b[4:], shareFlagEncryptData)
				return append(smb2Header(cmdTreeConnect, StatusSuccess, 0, 0), b...)
			}())...),
		"a request from the server": append(bytes.Clone(setup), frame(func() []byte { h := smb2Header(cmdRead, 0, 0, 0); h[16] &^= 1; return h }())...),
	} {
		t.Run(name, func(t *testing.T) {
			a, b := net.Pipe()
			go func() { _, _ = b.Write(stream); _ = b.Close() }()
			w := newWatchConn(a)
			w.sessionKey = func() []byte { return key }
			_, err := io.ReadAll(w)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// The same frames, well formed, pass: CCM-encrypted on SMB 3.0.
	ok := append(bytes.Clone(setup), frame(seal(t, 1, k30, 0, read(80, 4, 4)))...)
	ok = append(ok, frame(read(80, 4, 4))...)
	a, b := net.Pipe()
	go func() { _, _ = b.Write(ok); _ = b.Close() }()
	w := newWatchConn(a)
	w.sessionKey = func() []byte { return key }
	if _, err := io.ReadAll(w); err != nil {
		t.Fatal(err)
	}
	if n := w.snapshot(); n.encIn != 1 || n.framesIn != 2 {
		t.Fatalf("%+v", n)
	}
}

func flip(b []byte, i int) []byte {
	b[i] ^= 1
	return b
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
