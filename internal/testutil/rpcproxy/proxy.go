package rpcproxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
)

// PDU types (C706 12.6.4) the proxy names.
const (
	TypeRequest  = 0
	TypeResponse = 2
	TypeFault    = 3

	typeBindAck          = 12
	typeAlterContextResp = 15
)

const headerSize = 16

// Mutation alters one PDU. It gets a copy of the whole PDU (header, body,
// security trailer, verifier) and returns the bytes to send instead; cut
// true closes both connections after sending them (a truncated stream).
type Mutation func(pdu []byte) (out []byte, cut bool)

// Rule selects the PDU to alter: the Nth (1 = first) response PDU with a
// verifier (auth_length > 0) that the server sends on a connection to
// Port (0: any port), counted per connection. A rule fires once.
type Rule struct {
	Port   int
	Nth    int
	Mutate Mutation
	// Replay, when set instead of Mutate, alters the PDU knowing the
	// authenticated responses the server sent earlier on the connection
	// (oldest first, unaltered copies).
	Replay func(pdu []byte, earlier [][]byte) (out []byte, cut bool)
	// Control makes the rule count and alter the connection's bind_ack
	// and alter_context_resp PDUs instead of its authenticated responses.
	Control bool
	// Name is reported in events.
	Name string
}

// Event is one altered PDU.
type Event struct {
	Rule   string
	Port   int
	Conn   int    // the proxy's number of the connection (1 = first)
	CallID uint32 // of the altered PDU
	// AuthLength is the altered PDU's auth_length before the alteration:
	// the length of its verifier.
	AuthLength int
	// RequestsAfter counts the request PDUs the client sent on the same
	// connection after the altered PDU was delivered.
	RequestsAfter int
}

// Proxy forwards listen-address ports to the same ports of a server.
type Proxy struct {
	server string
	lns    []net.Listener

	mu     sync.Mutex
	rules  []*Rule
	events []*Event
	conns  int
	live   map[net.Conn]bool
	closed bool

	wg sync.WaitGroup
}

// Start listens on host at each of ports and forwards each connection to
// server (a host) at the same port. The caller closes the proxy.
func Start(ctx context.Context, host, server string, ports ...int) (*Proxy, error) {
	p := &Proxy{server: server, live: map[net.Conn]bool{}}
	var lc net.ListenConfig
	for _, port := range ports {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("rpcproxy: %w", err)
		}
		p.lns = append(p.lns, ln)
		p.wg.Add(1)
		go p.accept(ln, port)
	}
	return p, nil
}

// Add installs a rule. Rules added while a connection runs apply to its
// later PDUs.
func (p *Proxy) Add(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rr := r
	p.rules = append(p.rules, &rr)
}

// Clear removes the rules that have not fired.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Events returns copies of the events so far.
func (p *Proxy) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Event, len(p.events))
	for i, e := range p.events {
		out[i] = *e
	}
	return out
}

// Close stops listening, closes every connection and waits for them.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.live {
		_ = c.Close()
	}
	p.mu.Unlock()
	for _, ln := range p.lns {
		_ = ln.Close()
	}
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.live[c] = true
	return true
}

func (p *Proxy) accept(ln net.Listener, port int) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		n := p.conns
		p.mu.Unlock()
		p.wg.Add(1)
		go p.relay(c, port, n)
	}
}

// conn is the state of one proxied connection.
type conn struct {
	port, n   int
	responses int      // authenticated responses seen
	controls  int      // bind_ack and alter_context_resp PDUs seen
	earlier   [][]byte // copies of them, as the server sent them
	altered   []*Event // events of this connection
}

func (p *Proxy) relay(client net.Conn, port, n int) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	var d net.Dialer
	server, err := d.Dial("tcp", net.JoinHostPort(p.server, strconv.Itoa(port)))
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(server) {
		_ = client.Close()
		return
	}
	st := &conn{port: port, n: n}
	done := make(chan struct{}, 2)
	closeBoth := func() { _ = client.Close(); _ = server.Close() }
	go func() { // client -> server: count requests
		defer func() { done <- struct{}{} }()
		_ = pdus(client, func(pdu []byte) error {
			if pdu[2] == TypeRequest {
				p.mu.Lock()
				for _, e := range st.altered {
					e.RequestsAfter++
				}
				p.mu.Unlock()
			}
			_, err := server.Write(pdu)
			return err
		})
		closeBoth()
	}()
	go func() { // server -> client: alter
		defer func() { done <- struct{}{} }()
		_ = pdus(server, func(pdu []byte) error {
			out, cut := p.alter(st, pdu)
			if _, err := client.Write(out); err != nil {
				return err
			}
			if cut {
				return errCut
			}
			return nil
		})
		closeBoth()
	}()
	<-done
	<-done
	p.mu.Lock()
	delete(p.live, client)
	delete(p.live, server)
	p.mu.Unlock()
}

var errCut = errors.New("rpcproxy: stream cut by a rule")

// alter applies the first matching rule to pdu and records the event.
func (p *Proxy) alter(st *conn, pdu []byte) ([]byte, bool) {
	control := pdu[2] == typeBindAck || pdu[2] == typeAlterContextResp
	if !control && (pdu[2] != TypeResponse || binary.LittleEndian.Uint16(pdu[10:12]) == 0) {
		return pdu, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	nth := &st.responses
	if control {
		nth = &st.controls
	} else {
		defer func() { st.earlier = append(st.earlier, append([]byte(nil), pdu...)) }()
	}
	*nth++
	for i, r := range p.rules {
		if (r.Port != 0 && r.Port != st.port) || r.Control != control || r.Nth != *nth {
			continue
		}
		p.rules = append(p.rules[:i], p.rules[i+1:]...)
		e := &Event{Rule: r.Name, Port: st.port, Conn: st.n, CallID: binary.LittleEndian.Uint32(pdu[12:16]),
			AuthLength: int(binary.LittleEndian.Uint16(pdu[10:12]))}
		p.events = append(p.events, e)
		st.altered = append(st.altered, e)
		if r.Replay != nil {
			return r.Replay(append([]byte(nil), pdu...), st.earlier)
		}
		return r.Mutate(append([]byte(nil), pdu...))
	}
	return pdu, false
}

// pdus reads whole PDUs from r and calls f with each until r or f fails.
func pdus(r io.Reader, f func(pdu []byte) error) error {
	for {
		hdr := make([]byte, headerSize)
		if _, err := io.ReadFull(r, hdr); err != nil {
			return err
		}
		n := int(binary.LittleEndian.Uint16(hdr[8:10]))
		if hdr[4]&0xf0 != 0x10 || n < headerSize {
			return fmt.Errorf("rpcproxy: not a little-endian PDU (drep %x, frag_length %d)", hdr[4], n)
		}
		pdu := make([]byte, n)
		copy(pdu, hdr)
		if _, err := io.ReadFull(r, pdu[headerSize:]); err != nil {
			return err
		}
		if err := f(pdu); err != nil {
			return err
		}
	}
}

// Layout of an authenticated response PDU: where its stub, security
// trailer and verifier lie.
type Layout struct {
	StubStart, StubEnd int // stub data, without the auth padding
	Trailer            int // the 8-byte security trailer
	Verifier           int // auth_value, to the end of the PDU
}

// LayoutOf returns the layout of an authenticated response PDU, or false
// when it is not one or its lengths do not fit.
func LayoutOf(pdu []byte) (Layout, bool) {
	if len(pdu) < 24 || pdu[2] != TypeResponse {
		return Layout{}, false
	}
	n := int(binary.LittleEndian.Uint16(pdu[8:10]))
	auth := int(binary.LittleEndian.Uint16(pdu[10:12]))
	if auth == 0 || n != len(pdu) || n < 24+8+auth {
		return Layout{}, false
	}
	tr := n - auth - 8
	pad := int(pdu[tr+2])
	if tr-pad < 24 {
		return Layout{}, false
	}
	return Layout{StubStart: 24, StubEnd: tr - pad, Trailer: tr, Verifier: tr + 8}, true
}

// FlipStub flips bit (0-7) of the stub byte at offset (from the stub's
// start; negative counts from its end).
func FlipStub(offset int, bit uint) Mutation {
	return func(pdu []byte) ([]byte, bool) {
		l, ok := LayoutOf(pdu)
		if !ok {
			return pdu, false
		}
		i := l.StubStart + offset
		if offset < 0 {
			i = l.StubEnd + offset
		}
		if i >= l.StubStart && i < l.StubEnd {
			pdu[i] ^= 1 << bit
		}
		return pdu, false
	}
}

// FlipVerifier flips bit (0-7) of the verifier byte at offset (from the
// verifier's start; negative counts from the PDU's end).
func FlipVerifier(offset int, bit uint) Mutation {
	return func(pdu []byte) ([]byte, bool) {
		l, ok := LayoutOf(pdu)
		if !ok {
			return pdu, false
		}
		i := l.Verifier + offset
		if offset < 0 {
			i = len(pdu) + offset
		}
		if i >= l.Verifier && i < len(pdu) {
			pdu[i] ^= 1 << bit
		}
		return pdu, false
	}
}

// StripVerifier removes the security trailer and the verifier and sets
// auth_length to 0: the same response, unauthenticated.
func StripVerifier() Mutation {
	return func(pdu []byte) ([]byte, bool) {
		l, ok := LayoutOf(pdu)
		if !ok {
			return pdu, false
		}
		out := pdu[:l.StubEnd]
		binary.LittleEndian.PutUint16(out[8:10], uint16(len(out)))
		binary.LittleEndian.PutUint16(out[10:12], 0)
		return out, false
	}
}

// ShortVerifier keeps only the first n bytes of the verifier and fixes
// frag_length and auth_length to match.
func ShortVerifier(n int) Mutation {
	return func(pdu []byte) ([]byte, bool) {
		l, ok := LayoutOf(pdu)
		if !ok || l.Verifier+n > len(pdu) {
			return pdu, false
		}
		out := pdu[:l.Verifier+n]
		binary.LittleEndian.PutUint16(out[8:10], uint16(len(out)))
		binary.LittleEndian.PutUint16(out[10:12], uint16(n))
		return out, false
	}
}

// Garbage replaces everything after the header (body, trailer, verifier)
// with random bytes, keeping the header and its lengths: a peer that
// completed authentication and then sends noise.
func Garbage() Mutation {
	return func(pdu []byte) ([]byte, bool) {
		_, _ = rand.Read(pdu[headerSize:])
		return pdu, false
	}
}

// Truncate sends only the first n bytes of the PDU, then closes the
// connection.
func Truncate(n int) Mutation {
	return func(pdu []byte) ([]byte, bool) {
		if n < len(pdu) {
			pdu = pdu[:n]
		}
		return pdu, true
	}
}

// ReplayEarlier sends the n-th (1 = first) earlier authenticated response
// of the connection instead of this one, with this one's call_id; with
// seq, also with this one's clear Kerberos (RFC 4121) sequence number,
// the verifier's bytes 8-15: a man in the middle who replays an authentic
// sealed PDU and fixes up the fields it can read.
func ReplayEarlier(n int, seq bool) func(pdu []byte, earlier [][]byte) ([]byte, bool) {
	return func(pdu []byte, earlier [][]byte) ([]byte, bool) {
		if n < 1 || n > len(earlier) {
			return pdu, false
		}
		out := append([]byte(nil), earlier[n-1]...)
		copy(out[12:16], pdu[12:16])
		lo, okOld := LayoutOf(out)
		ln, okNew := LayoutOf(pdu)
		if seq && okOld && okNew && lo.Verifier+16 <= len(out) && ln.Verifier+16 <= len(pdu) {
			copy(out[lo.Verifier+8:lo.Verifier+16], pdu[ln.Verifier+8:ln.Verifier+16])
		}
		return out, false
	}
}

// ClearFlags clears the bits of mask in the PDU's pfc_flags, for example
// PFC_SUPPORT_HEADER_SIGN (0x04) in a bind_ack.
func ClearFlags(mask byte) Mutation {
	return func(pdu []byte) ([]byte, bool) {
		pdu[3] &^= mask
		return pdu, false
	}
}
