package smbconn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/netbios"
)

// nbtFront is a loopback NetBIOS session service in front of a fake SMB
// server: it reads each SESSION REQUEST, records the called and calling
// names, and answers with answer(called) — nil for a POSITIVE SESSION
// RESPONSE, after which it sends a SESSION KEEP ALIVE and relays the
// connection to the SMB server on backend.
type nbtFront struct {
	ln      net.Listener
	backend int
	answer  func(called netbios.Name) []byte

	mu      sync.Mutex
	called  []netbios.Name
	calling []netbios.Name
	wg      sync.WaitGroup
}

func startNBTFront(t *testing.T, backend int, answer func(netbios.Name) []byte) *nbtFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &nbtFront{ln: ln, backend: backend, answer: answer}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); f.wg.Wait() })
	return f
}

func (f *nbtFront) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

// decodeFirstLevel decodes one first-level encoded name without scope.
func decodeFirstLevel(b []byte) (netbios.Name, bool) {
	var n netbios.Name
	if len(b) != 34 || b[0] != 32 || b[33] != 0 {
		return n, false
	}
	for i := range 16 {
		hi, lo := b[1+2*i]-'A', b[2+2*i]-'A'
		if hi > 15 || lo > 15 {
			return n, false
		}
		n.Raw[i] = hi<<4 | lo
	}
	return n, true
}

func (f *nbtFront) serve(c net.Conn) {
	defer c.Close()
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[0] != nbtSessionRequest {
		return
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[2:]))
	if _, err := io.ReadFull(c, body); err != nil || len(body) != 68 {
		return
	}
	called, ok1 := decodeFirstLevel(body[:34])
	calling, ok2 := decodeFirstLevel(body[34:])
	if !ok1 || !ok2 {
		return
	}
	f.mu.Lock()
	f.called, f.calling = append(f.called, called), append(f.calling, calling)
	f.mu.Unlock()
	if a := f.answer(called); a != nil {
		_, _ = c.Write(a)
		return
	}
	_, _ = c.Write([]byte{nbtPositive, 0, 0, 0, nbtKeepAlive, 0, 0, 0})
	b, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(f.backend))
	if err != nil {
		return
	}
	defer b.Close()
	done := make(chan struct{})
	go func() { _, _ = io.Copy(c, b); close(done) }()
	_, _ = io.Copy(b, c)
	_ = b.Close()
	<-done
}

func (f *nbtFront) names() (called, calling []netbios.Name) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netbios.Name(nil), f.called...), append([]netbios.Name(nil), f.calling...)
}

func negative(code NBTCode) []byte { return []byte{nbtNegative, 0, 0, 1, byte(code)} }

func nbtOpts(port int) Options {
	return Options{Transport: TransportNetBIOS, Port: port, AllowUnsigned: true, SetupTimeout: 5 * time.Second}
}

// TestDialNetBIOS runs a whole session (negotiate, logon, tree connect,
// a file write and read) over the NetBIOS session service, with a
// SESSION KEEP ALIVE from the server in the stream.
func TestDialNetBIOS(t *testing.T) {
	srv := startFakeServer(t, nil)
	front := startNBTFront(t, srv.port(), func(netbios.Name) []byte { return nil })
	opts := nbtOpts(front.port())
	opts.CalledName, opts.CallingName = "PC1", "console7"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Dial(ctx, "127.0.0.1", Auth{User: "u", Password: "p"}, opts)
	if err != nil {
		t.Fatalf("Dial over NetBIOS: %v", err)
	}
	defer s.Close()
	if got := s.Info(); got.Transport != TransportNetBIOS || got.CalledName != "PC1" || got.Dialect != 0x0210 {
		t.Fatalf("Info: transport %q called %q dialect %v", got.Transport, got.CalledName, got.Dialect)
	}
	sh, err := s.Mount(ctx, "ADMIN$")
	if err != nil {
		t.Fatalf("Mount over NetBIOS: %v", err)
	}
	_ = sh.Umount()
	called, calling := front.names()
	if len(called) != 1 || called[0].String() != "PC1<20>" || calling[0].String() != "CONSOLE7<00>" {
		t.Fatalf("SESSION REQUEST names: called %v calling %v", called, calling)
	}
}

func TestDialDirectTransport(t *testing.T) {
	srv := startFakeServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Dial(ctx, "127.0.0.1", Auth{User: "u", Password: "p"}, Options{Port: srv.port(), AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Info().Transport != TransportDirect || s.Info().CalledName != "" {
		t.Fatalf("Info: %+v", s.Info())
	}
	// On Direct TCP a keep-alive type is not part of the protocol.
	_, err = Dial(ctx, "127.0.0.1", Auth{User: "u", Password: "p"}, Options{Transport: "smb1", Port: srv.port()})
	if !errors.Is(err, ErrBadInput) {
		t.Fatalf("unknown transport: %v", err)
	}
}

// TestDialNetBIOSRetriesSMBServer: a server that does not serve the
// called name is called again as *SMBSERVER, once.
func TestDialNetBIOSRetriesSMBServer(t *testing.T) {
	srv := startFakeServer(t, nil)
	front := startNBTFront(t, srv.port(), func(n netbios.Name) []byte {
		if n.Base() == SMBServerName {
			return nil
		}
		return negative(NBTCalledNotPresent)
	})
	opts := nbtOpts(front.port())
	opts.CalledName = "OTHERNAME"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Dial(ctx, "127.0.0.1", Auth{User: "u", Password: "p"}, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer s.Close()
	called, calling := front.names()
	if len(called) != 2 || called[0].Base() != "OTHERNAME" || called[1].String() != "*SMBSERVER<20>" || s.Info().CalledName != SMBServerName {
		t.Fatalf("called %v, Info.CalledName %q", called, s.Info().CalledName)
	}
	if calling[0].String() != "LANCONNECT<00>" {
		t.Fatalf("default calling name %v", calling[0])
	}
}

func TestDialNetBIOSRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  []byte
		calls   int
		code    NBTCode
		retgt   netip.AddrPort
		isProto bool
	}{
		{name: "negative-unspecified", answer: negative(NBTUnspecified), calls: 1, code: NBTUnspecified},
		{name: "negative-resources", answer: negative(NBTInsufficientResources), calls: 1, code: NBTInsufficientResources},
		{name: "negative-called-twice", answer: negative(NBTNotListeningOnCalled), calls: 2, code: NBTNotListeningOnCalled},
		{name: "retarget", answer: []byte{nbtRetarget, 0, 0, 6, 10, 9, 8, 7, 0, 139}, calls: 1, retgt: netip.MustParseAddrPort("10.9.8.7:139")},
		{name: "smb-answer", answer: []byte{0, 0, 0, 2, 0xFE, 'S'}, calls: 1, isProto: true},
		{name: "long-body", answer: []byte{nbtNegative, 0, 0, 7, 0x8F, 0, 0, 0, 0, 0, 0}, calls: 1, isProto: true},
		{name: "closed", answer: []byte{}, calls: 1, isProto: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := startNBTFront(t, 1, func(netbios.Name) []byte { return tc.answer })
			opts := nbtOpts(front.port())
			opts.CalledName = "PC1"
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Dial(ctx, "127.0.0.1", Auth{User: "u", Password: "p"}, opts)
			if called, _ := front.names(); len(called) != tc.calls {
				t.Errorf("%d SESSION REQUESTs, want %d (%v)", len(called), tc.calls, called)
			}
			var se *Error
			if !errors.As(err, &se) || se.Op != "netbios session" || se.Info.Transport != TransportNetBIOS {
				t.Fatalf("err %v (%#v)", err, se)
			}
			if tc.isProto {
				if !errors.Is(err, ErrProtocol) || errors.Is(err, ErrNBTSession) {
					t.Fatalf("want ErrProtocol, got %v", err)
				}
				return
			}
			var ne *NBTSessionError
			if !errors.Is(err, ErrNBTSession) || !errors.As(err, &ne) || ne.Code != tc.code || ne.Retarget != tc.retgt {
				t.Fatalf("want NBTSessionError code %v retarget %v, got %v", tc.code, tc.retgt, err)
			}
		})
	}
}

func TestDialNetBIOSRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err = Dial(context.Background(), "127.0.0.1", Auth{User: "u", Password: "p"}, nbtOpts(port))
	var se *Error
	if !errors.Is(err, ErrRefused) || !errors.As(err, &se) || se.Op != "dial" {
		t.Fatalf("want ErrRefused from dial, got %v", err)
	}
}

func TestCalledName(t *testing.T) {
	for in, want := range map[string]string{
		"":                          SMBServerName,
		"10.1.2.3":                  SMBServerName,
		"[fe80::1]":                 SMBServerName,
		"pc1":                       "PC1",
		"pc1.corp.example.":         "PC1",
		"averyveryverylongname.x":   SMBServerName,
		"WS-0042":                   "WS-0042",
		"bad name":                  SMBServerName,
		"exactly15charsx.corp.test": "EXACTLY15CHARSX",
	} {
		if got := CalledName(in); got != want {
			t.Errorf("CalledName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionRequestWire(t *testing.T) {
	pkt, err := sessionRequest("*SMBSERVER", "me")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := netbios.MustName("*SMBSERVER", 0x20).MarshalBinary()
	b, _ := netbios.MustName("ME", 0).MarshalBinary()
	want := append([]byte{0x81, 0, 0, 68}, append(a, b...)...)
	if !bytes.Equal(pkt, want) {
		t.Fatalf("SESSION REQUEST\n got %x\nwant %x", pkt, want)
	}
	// "*SMBSERVER" is space padded (only the bare wildcard is zero padded).
	if pkt[4+1+20] != 'C' || pkt[4+1+21] != 'A' {
		t.Fatalf("padding byte encodes as %q, want CA (0x20)", pkt[4+21:4+23])
	}
	if _, err := sessionRequest("sixteen-chars-xx", "me"); !errors.Is(err, ErrBadInput) {
		t.Fatalf("long called name: %v", err)
	}
}
