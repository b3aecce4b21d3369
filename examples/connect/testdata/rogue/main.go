// Command rogue is a test helper for examples/connect's lab tests: a host
// that answers for a name it does not own, as Responder does. It answers
// NetBIOS broadcast name queries for -claim with its own -addr, and runs a
// minimal SMB2 server on -addr:445 that negotiates, sends an NTLM
// CHALLENGE naming itself (-identity), and refuses the logon. It counts
// what it receives and rewrites -count after each event as
// "queries=N negotiates=N challenges=N authenticates=N": an AUTHENTICATE
// is what an attacker wants (an NTLMv2 response to crack or relay).
//
// It is not an SMB server: it answers nothing else, and it never accepts
// a logon.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/lanconnect/lanconnect/netbios"
)

type counts struct {
	mu                                             sync.Mutex
	path                                           string
	queries, negotiates, challenges, authenticates int
}

func (c *counts) add(f func(*counts)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
	s := fmt.Sprintf("queries=%d negotiates=%d challenges=%d authenticates=%d\n", c.queries, c.negotiates, c.challenges, c.authenticates)
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err == nil {
		_ = os.Rename(tmp, c.path)
	}
}

func main() {
	claim := flag.String("claim", "", "NetBIOS name to answer for")
	addr := flag.String("addr", "", "this host's address")
	identity := flag.String("identity", "ROGUE", "NetBIOS name in the NTLM challenge")
	countPath := flag.String("count", "", "file to write the counters to")
	flag.Parse()
	ip, err := netip.ParseAddr(*addr)
	if err != nil || *claim == "" || *countPath == "" {
		log.Fatal("rogue: -claim, -addr and -count are required")
	}
	c := &counts{path: *countPath}
	c.add(func(*counts) {})
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 137})
	if err != nil {
		log.Fatal(err)
	}
	tcp, err := net.Listen("tcp", netip.AddrPortFrom(ip, 445).String())
	if err != nil {
		log.Fatal(err)
	}
	go serveNBNS(udp, strings.ToUpper(*claim), ip, c)
	for {
		conn, err := tcp.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serveSMB(conn, *identity, c)
	}
}

// serveNBNS answers name queries for claim (any suffix) with ip.
func serveNBNS(conn *net.UDPConn, claim string, ip netip.Addr, c *counts) {
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			log.Fatal(err)
		}
		var m netbios.Message
		if m.Unpack(buf[:n]) != nil || m.Response || m.Opcode != netbios.OpcodeQuery || len(m.Questions) != 1 || m.Questions[0].Type != netbios.TypeNB {
			continue
		}
		q := m.Questions[0].Name
		if !strings.EqualFold(strings.TrimSpace(q.Base()), claim) {
			continue
		}
		c.add(func(c *counts) { c.queries++ })
		resp := &netbios.Message{
			Header: netbios.Header{ID: m.ID, Response: true, Authoritative: true, RecursionDesired: true},
			Answers: []netbios.Resource{{Name: q, Type: netbios.TypeNB, Class: netbios.ClassINET, TTL: 300000,
				Body: &netbios.NBBody{Entries: []netbios.NBEntry{{Addr: ip}}}}},
		}
		if b, err := resp.Pack(); err == nil {
			_, _ = conn.WriteToUDPAddrPort(b, from)
		}
	}
}

// serveSMB answers NEGOTIATE (SMB 2.1), the first SESSION_SETUP (with a
// CHALLENGE naming identity) and the second (the AUTHENTICATE, counted,
// refused with STATUS_LOGON_FAILURE), then hangs up.
func serveSMB(conn net.Conn, identity string, c *counts) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint32(hdr[:])&0xFFFFFF)
		if _, err := io.ReadFull(conn, msg); err != nil || len(msg) < 64 || string(msg[:4]) != "\xfeSMB" {
			return
		}
		cmd := binary.LittleEndian.Uint16(msg[12:])
		id := binary.LittleEndian.Uint64(msg[24:])
		var resp []byte
		switch {
		case cmd == 0:
			c.add(func(c *counts) { c.negotiates++ })
			resp = negotiate(id)
		case cmd == 1 && isAuthenticate(msg):
			c.add(func(c *counts) { c.authenticates++ })
			resp = failure(1, id, 0xC000006D) // STATUS_LOGON_FAILURE
		case cmd == 1:
			c.add(func(c *counts) { c.challenges++ })
			resp = setup(id, 0xC0000016, spnego(challenge(identity))) // MORE_PROCESSING_REQUIRED
		default:
			return
		}
		if _, err := conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(resp))), resp...)); err != nil {
			return
		}
	}
}

// isAuthenticate reports whether a SESSION_SETUP request carries an NTLM
// AUTHENTICATE_MESSAGE (type 3).
func isAuthenticate(msg []byte) bool {
	i := strings.Index(string(msg), "NTLMSSP\x00")
	return i >= 0 && i+12 <= len(msg) && binary.LittleEndian.Uint32(msg[i+8:]) == 3
}

func header(cmd uint16, status uint32, id uint64) []byte {
	h := make([]byte, 64)
	copy(h, "\xfeSMB")
	binary.LittleEndian.PutUint16(h[4:], 64)
	binary.LittleEndian.PutUint32(h[8:], status)
	binary.LittleEndian.PutUint16(h[12:], cmd)
	binary.LittleEndian.PutUint16(h[14:], 1)
	binary.LittleEndian.PutUint32(h[16:], 1) // SERVER_TO_REDIR
	binary.LittleEndian.PutUint64(h[24:], id)
	binary.LittleEndian.PutUint64(h[40:], 0x4242)
	return h
}

func negotiate(id uint64) []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint16(b, 65)
	binary.LittleEndian.PutUint16(b[2:], 1)      // signing enabled
	binary.LittleEndian.PutUint16(b[4:], 0x0210) // SMB 2.1
	copy(b[8:24], "lanconnect-rogue")
	binary.LittleEndian.PutUint32(b[28:], 1<<16)
	binary.LittleEndian.PutUint32(b[32:], 1<<16)
	binary.LittleEndian.PutUint32(b[36:], 1<<16)
	return append(header(0, 0, id), b...)
}

func setup(id uint64, status uint32, token []byte) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint16(b, 9)
	binary.LittleEndian.PutUint16(b[4:], 72)
	binary.LittleEndian.PutUint16(b[6:], uint16(len(token)))
	return append(append(header(1, status, id), b...), token...)
}

// failure is an SMB2 ERROR response (MS-SMB2 2.2.2), as a server sends
// for a failed request: StructureSize 9, no error contexts, ByteCount 0
// and the one byte of ErrorData that then follows.
func failure(cmd uint16, id uint64, status uint32) []byte {
	b := make([]byte, 9)
	binary.LittleEndian.PutUint16(b, 9)
	return append(header(cmd, status, id), b...)
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

// challenge is an NTLM CHALLENGE_MESSAGE of a workgroup computer named
// name, with the flags a Windows server sets.
func challenge(name string) []byte {
	var info []byte
	for _, p := range []struct {
		id uint16
		v  []byte
	}{{2, utf16le(name)}, {1, utf16le(name)}, {4, utf16le(strings.ToLower(name))}, {3, utf16le(strings.ToLower(name))}} {
		info = binary.LittleEndian.AppendUint16(info, p.id)
		info = binary.LittleEndian.AppendUint16(info, uint16(len(p.v)))
		info = append(info, p.v...)
	}
	info = append(info, 0, 0, 0, 0)
	target := utf16le(name)
	m := make([]byte, 48)
	copy(m, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(m[8:], 2)
	binary.LittleEndian.PutUint16(m[12:], uint16(len(target)))
	binary.LittleEndian.PutUint16(m[14:], uint16(len(target)))
	binary.LittleEndian.PutUint32(m[16:], 48)
	binary.LittleEndian.PutUint32(m[20:], 0xE2898215)
	copy(m[24:32], "\x11\x22\x33\x44\x55\x66\x77\x88")
	binary.LittleEndian.PutUint16(m[40:], uint16(len(info)))
	binary.LittleEndian.PutUint16(m[42:], uint16(len(info)))
	binary.LittleEndian.PutUint32(m[44:], uint32(48+len(target)))
	return append(append(m, target...), info...)
}

// spnego wraps an NTLM token in a negTokenResp: accept-incomplete, mech
// NTLMSSP (1.3.6.1.4.1.311.2.2.10).
func spnego(tok []byte) []byte {
	der := func(tag byte, body []byte) []byte {
		n := len(body)
		switch {
		case n < 0x80:
			return append([]byte{tag, byte(n)}, body...)
		case n < 0x100:
			return append([]byte{tag, 0x81, byte(n)}, body...)
		}
		return append([]byte{tag, 0x82, byte(n >> 8), byte(n)}, body...)
	}
	state := der(0xa0, []byte{0x0a, 0x01, 0x01})
	mech := der(0xa1, []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a})
	resp := der(0xa2, der(0x04, tok))
	seq := der(0x30, append(append(state, mech...), resp...))
	return der(0xa1, seq)
}
