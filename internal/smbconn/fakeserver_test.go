package smbconn

import (
	"encoding/asn1"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
)

// fakeServer is a loopback SMB 2.1 server for tests: it completes
// NEGOTIATE and an NTLM SESSION_SETUP (any AUTHENTICATE is accepted), and
// answers TREE_CONNECT, CREATE, READ, WRITE, IOCTL, QUERY_INFO, CLOSE,
// TREE_DISCONNECT and LOGOFF with plausible responses. It does not sign:
// it offers signing without requiring it, and the client must allow
// unsigned sessions (Options.AllowUnsigned), which go-smb2 then accepts.
//
// mutate, when set, sees every response (its index from 0, the command
// and the whole SMB2 message) and returns what to send instead; when it
// changed the message, the server closes the connection right after
// sending it, so that the client's pending requests end at once.
type fakeServer struct {
	ln     net.Listener
	mutate func(i int, cmd uint16, msg []byte) (out []byte, changed bool)

	wg sync.WaitGroup
}

const fakeSessionID = 0x0000_1122_3344_5566

func startFakeServer(t testing.TB, mutate func(int, uint16, []byte) ([]byte, bool)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, mutate: mutate}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *fakeServer) serve(c net.Conn) {
	defer c.Close()
	n := 0
	setups := 0
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		req := make([]byte, binary.BigEndian.Uint32(hdr[:])&0xFFFFFF)
		if _, err := io.ReadFull(c, req); err != nil || len(req) < 64 {
			return
		}
		cmd := binary.LittleEndian.Uint16(req[12:])
		if cmd == cmdSessionSetup {
			setups++
		}
		status, body := fakeAnswer(cmd, req, setups)
		msg := make([]byte, 64, 64+len(body))
		copy(msg, "\xfeSMB")
		binary.LittleEndian.PutUint16(msg[4:], 64)
		copy(msg[6:8], req[6:8]) // credit charge
		binary.LittleEndian.PutUint32(msg[8:], uint32(status))
		binary.LittleEndian.PutUint16(msg[12:], cmd)
		binary.LittleEndian.PutUint16(msg[14:], 64) // credits granted
		binary.LittleEndian.PutUint32(msg[16:], flagServerToRedir)
		copy(msg[24:32], req[24:32]) // message id
		tree := binary.LittleEndian.Uint32(req[36:])
		if cmd == cmdTreeConnect {
			tree = 7
		}
		binary.LittleEndian.PutUint32(msg[36:], tree)
		if cmd != cmdNegotiate {
			binary.LittleEndian.PutUint64(msg[40:], fakeSessionID)
		}
		msg = append(msg, body...)
		changed := false
		if s.mutate != nil {
			msg, changed = s.mutate(n, cmd, msg)
		}
		n++
		out := binary.BigEndian.AppendUint32(nil, uint32(len(msg))&0xFFFFFF)
		if _, err := c.Write(append(out, msg...)); err != nil || changed {
			return
		}
	}
}

// fakeAnswer returns the status and body of the answer to req.
func fakeAnswer(cmd uint16, req []byte, setups int) (NTStatus, []byte) {
	rb := req[64:]
	le := binary.LittleEndian
	switch cmd {
	case cmdNegotiate:
		b := make([]byte, 64)
		le.PutUint16(b, 65)
		le.PutUint16(b[2:], 1) // signing enabled, not required
		le.PutUint16(b[4:], 0x0210)
		copy(b[8:24], "fake-server-guid")
		le.PutUint32(b[28:], 1<<16)
		le.PutUint32(b[32:], 1<<16)
		le.PutUint32(b[36:], 1<<16)
		return StatusSuccess, b
	case cmdSessionSetup:
		b := make([]byte, 8)
		le.PutUint16(b, 9)
		if setups == 1 {
			tok := fakeChallengeToken()
			le.PutUint16(b[4:], 64+8)
			le.PutUint16(b[6:], uint16(len(tok)))
			return StatusMoreProcessingRequired, append(b, tok...)
		}
		return StatusSuccess, b
	case cmdTreeConnect:
		b := make([]byte, 16)
		le.PutUint16(b, 16)
		b[2] = 1 // disk
		le.PutUint32(b[12:], 0x001F01FF)
		return StatusSuccess, b
	case cmdCreate:
		b := make([]byte, 88)
		le.PutUint16(b, 89)
		le.PutUint32(b[4:], 1)
		le.PutUint64(b[48:], 4096) // end of file
		le.PutUint32(b[56:], 0x80)
		copy(b[64:80], "fake-file-id-001")
		return StatusSuccess, b
	case cmdRead:
		n := 0
		if len(rb) >= 8 {
			n = int(min(le.Uint32(rb[4:]), 4096))
		}
		b := make([]byte, 16, 16+n)
		le.PutUint16(b, 17)
		b[2] = 80
		le.PutUint32(b[4:], uint32(n))
		return StatusSuccess, append(b, make([]byte, n)...)
	case 0x0009: // WRITE
		b := make([]byte, 16)
		le.PutUint16(b, 17)
		if len(rb) >= 8 {
			le.PutUint32(b[4:], le.Uint32(rb[4:]))
		}
		return StatusSuccess, b
	case cmdIoctl:
		out := []byte("ioctl-output")
		b := make([]byte, 48)
		le.PutUint16(b, 49)
		if len(rb) >= 24 {
			copy(b[4:24], rb[4:24]) // ctl code, file id
		}
		le.PutUint32(b[32:], 64+48)
		le.PutUint32(b[36:], uint32(len(out)))
		return StatusSuccess, append(b, out...)
	case cmdQueryInfo:
		out := make([]byte, 104)
		b := make([]byte, 8)
		le.PutUint16(b, 9)
		le.PutUint16(b[2:], 64+8)
		le.PutUint32(b[4:], uint32(len(out)))
		return StatusSuccess, append(b, out...)
	case 0x0006: // CLOSE
		b := make([]byte, 60)
		le.PutUint16(b, 60)
		return StatusSuccess, b
	case 0x0002, 0x0004, 0x0007, 0x000D: // LOGOFF, TREE_DISCONNECT, FLUSH, ECHO
		b := make([]byte, 4)
		le.PutUint16(b, 4)
		return StatusSuccess, b
	}
	b := make([]byte, 9)
	le.PutUint16(b, 9)
	return StatusNotSupported, b
}

// fakeChallengeToken is an SPNEGO negTokenResp carrying an NTLM CHALLENGE.
func fakeChallengeToken() []byte {
	type negTokenResp struct {
		NegState      asn1.Enumerated       `asn1:"explicit,tag:0"`
		SupportedMech asn1.ObjectIdentifier `asn1:"explicit,tag:1"`
		ResponseToken []byte                `asn1:"explicit,tag:2"`
	}
	ch := buildChallenge(0xE2898215, "FAKE", []av{
		{avNbDomainName, utf16le("FAKE")},
		{avNbComputerName, utf16le("FAKE-SRV")},
		{avTimestamp, make([]byte, 8)},
	}, []byte{10, 0, 0x4F, 0x4F, 0, 0, 0, 15})
	b, err := asn1.MarshalWithParams(negTokenResp{1, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 2, 10}, ch}, "explicit,tag:1")
	if err != nil {
		panic(err)
	}
	return b
}
