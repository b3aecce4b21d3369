package winemu_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
)

// rawPDU builds a connection-oriented PDU with the common header.
func rawPDU(typ, flags byte, callID uint32, body []byte) []byte {
	b := make([]byte, 16, 16+len(body))
	b[0], b[1], b[2], b[3] = 5, 0, typ, flags
	b[4] = 0x10
	b = append(b, body...)
	binary.LittleEndian.PutUint16(b[8:], uint16(len(b)))
	binary.LittleEndian.PutUint32(b[12:], callID)
	return b
}

// readRaw reads one PDU or returns an error (EOF when the server closed).
func readRaw(c net.Conn) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h := make([]byte, 16)
	if _, err := io.ReadFull(c, h); err != nil {
		return nil, err
	}
	b := make([]byte, binary.LittleEndian.Uint16(h[8:]))
	copy(b, h)
	_, err := io.ReadFull(c, b[16:])
	return b, err
}

// TestMalformedPDUs sends broken PDUs straight over TCP: the server must
// answer with a fault or close the connection, never crash or hang, and
// keep serving others.
func TestMalformedPDUs(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ep, _ := e.srv.EndpointFor(svcctl.SvcctlSyntaxV2_0)
	addr := ep.Addr.String()
	request := func(ctxID uint16) []byte {
		body := make([]byte, 8)
		binary.LittleEndian.PutUint32(body, 4)
		binary.LittleEndian.PutUint16(body[4:], ctxID)
		binary.LittleEndian.PutUint16(body[6:], 15)
		return append(body, 0, 0, 0, 0)
	}
	cases := []struct {
		name    string
		send    []byte
		wantPDU byte // 0: the server closes the connection
		status  uint32
	}{
		{"request before bind", rawPDU(0, 3, 1, request(7)), 3, 0x1c010003},
		{"wrong version", func() []byte { b := rawPDU(11, 3, 1, make([]byte, 12)); b[0] = 4; return b }(), 0, 0},
		{"big-endian", func() []byte { b := rawPDU(11, 3, 1, make([]byte, 12)); b[4] = 0; return b }(), 0, 0},
		{"auth length beyond fragment", func() []byte { b := rawPDU(0, 3, 1, request(1)); binary.LittleEndian.PutUint16(b[10:], 500); return b }(), 0, 0},
		{"truncated bind", rawPDU(11, 3, 1, []byte{1, 2}), 0, 0},
		{"middle fragment without first", rawPDU(0, 0, 9, request(1)), 3, 0x1c01000b},
		{"unknown packet type", rawPDU(99, 3, 1, nil), 0, 0},
		{"alter_context before bind", rawPDU(14, 3, 1, make([]byte, 12)), 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			b, err := readRaw(c)
			if tc.wantPDU == 0 {
				if err == nil {
					t.Fatalf("server answered % x", b)
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("server neither answered nor closed")
				}
				return
			}
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if b[2] != tc.wantPDU || len(b) < 28 || binary.LittleEndian.Uint32(b[24:]) != tc.status {
				t.Fatalf("answer % x, want type %d status %#x", b, tc.wantPDU, tc.status)
			}
			if binary.LittleEndian.Uint32(b[12:]) != binary.LittleEndian.Uint32(tc.send[12:]) {
				t.Fatal("call ID not echoed")
			}
		})
	}
	// The server still serves a real client.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	openSCM(ctx, t, cli, scManagerConnect)
}

// TestCloseWhileHung closes the server while a client waits on a hung
// call: Close returns promptly and the client's call fails.
func TestCloseWhileHung(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	e.srv.Faults.SetHang(true)
	errc := make(chan error, 1)
	go func() {
		_, err := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: scManagerConnect})
		errc <- err
	}()
	for !strings.Contains(e.logs.String(), "request hung by fault mode") {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	e.srv.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("hung call succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client call still blocked after Close")
	}
}
