package winemu

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
)

func svcctlSyntax() *dcerpc.SyntaxID { return svcctl.SvcctlSyntaxV2_0 }
func epmSyntax() *dcerpc.SyntaxID    { return epm.EpmSyntaxV3_0 }
func svcctlUUIDBytes() []byte        { return svcctl.SvcctlSyntaxV2_0.IfUUID.EncodeBinary() }

// TestSendResponseRespectsClientFragmentSize checks the response
// fragmentation against a client that accepts only 1432-byte fragments
// (go-msrpc's client never asks for less than 4096).
func TestSendResponseRespectsClientFragmentSize(t *testing.T) {
	srv := &Server{}
	srv.init()
	a, b := net.Pipe()
	defer b.Close()
	c := &conn{srv: srv, nc: a, xmit: 1432}
	stub := make([]byte, 5000)
	for i := range stub {
		stub[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- c.sendResponse(&pendingCall{callID: 7, ctxID: 3}, "test", stub)
		a.Close()
	}()
	var got []byte
	for n := 0; ; n++ {
		h, pdu, err := readPDU(b, 0xffff)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(pdu) > 1432 {
			t.Fatalf("fragment %d is %d bytes", n, len(pdu))
		}
		if h.Type != dcerpc.PacketTypeResponse || h.CallID != 7 || binary.LittleEndian.Uint16(pdu[20:]) != 3 {
			t.Fatalf("fragment %d header %+v", n, h)
		}
		if first := h.Flags&dcerpc.PacketFlagFirstFrag != 0; first != (n == 0) {
			t.Fatalf("fragment %d first flag %v", n, first)
		}
		if hint := binary.LittleEndian.Uint32(pdu[16:]); int(hint) != len(stub)-len(got) {
			t.Fatalf("fragment %d alloc hint %d, want %d", n, hint, len(stub)-len(got))
		}
		got = append(got, pdu[responseHdrSize:]...)
		if last := h.Flags&dcerpc.PacketFlagLastFrag != 0; last != (len(got) == len(stub)) {
			t.Fatalf("fragment %d last flag %v at %d bytes", n, last, len(got))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, stub) {
		t.Fatal("reassembled stub differs")
	}
}

// FuzzServeConn feeds arbitrary bytes to a connection: the server must
// neither panic nor hang, whatever it receives.
func FuzzServeConn(f *testing.F) {
	bind := []byte{5, 0, 11, 3, 0x10, 0, 0, 0, 72, 0, 0, 0, 1, 0, 0, 0,
		0xd0, 0x16, 0xd0, 0x16, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0}
	bind = append(bind, svcctlUUIDBytes()...)
	bind = append(bind, 2, 0, 0, 0)
	bind = append(bind, dcerpc.TransferNDR.EncodeBinary()...)
	bind = append(bind, 2, 0, 0, 0)
	f.Add(bind)
	f.Add(append(append([]byte{}, bind...), 5, 0, 0, 3, 0x10, 0, 0, 0, 28, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 0, 0, 15, 0, 0, 0, 0, 0))
	f.Add([]byte{5, 0, 0, 3, 0x10, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0})
	f.Add([]byte{5, 0, 16, 3, 0x10, 0, 0, 0, 40, 0, 16, 0, 1, 0, 0, 0, 0, 0, 0, 0, 10, 6, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := &Server{Users: map[string]User{"u": {Password: "p", Admin: true}}, Root: t.TempDir()}
		srv.init()
		a, b := net.Pipe()
		c := srv.newConn(t.Context(), a, map[string]bool{ifaceKey(svcctlSyntax()): true, ifaceKey(epmSyntax()): true})
		done := make(chan struct{})
		go func() {
			defer srv.wg.Done()
			defer close(done)
			c.serve()
		}()
		go func() { _, _ = io.Copy(io.Discard, b) }()
		_, _ = b.Write(data)
		b.Close()
		<-done
		srv.Close()
	})
}
