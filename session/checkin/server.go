package checkin

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/internal/selfcert"
)

// Server is the console side of check-in. Set its fields, then call Listen
// once. A zero Server listens on 127.0.0.1 on an ephemeral port with an
// ephemeral self-signed certificate; a console that launches applets on
// other computers must set Addr to an address they can reach.
//
// Server does not launch anything and does not know about targets: it
// matches tokens to the sessions that asked for them.
type Server struct {
	// Addr is the TCP address to listen on. Empty means "127.0.0.1:0".
	Addr string
	// Certificate is the TLS certificate to present. Zero means an
	// ephemeral self-signed ECDSA certificate made by Listen.
	Certificate tls.Certificate
	// TokenTTL is how long a ticket stays valid. Zero means 5 minutes.
	TokenTTL time.Duration
	// HandshakeTimeout bounds TLS handshake plus hello. Zero means 10 s.
	HandshakeTimeout time.Duration
	// Logger receives one line per check-in attempt; tokens are never
	// logged. Nil discards.
	Logger *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	fp       string
	pending  map[[sha256.Size]byte]*Pending
	closed   bool
	conns    map[*Conn]struct{}
	wg       sync.WaitGroup
	closeErr error
}

// Pending is a ticket that waits for its applet.
type Pending struct {
	s       *Server
	key     [sha256.Size]byte
	token   []byte
	session string
	ticket  Ticket
	ready   chan *Conn
	done    chan struct{} // closed on cancel, expiry or server close
	once    sync.Once
	err     error
	timer   *time.Timer
	peers   []netip.Addr
	refused func(Refusal)
	nref    int // refusals reported so far; under s.mu
}

// ExpectOptions restrict and observe one ticket (see Server.ExpectWith).
type ExpectOptions struct {
	// Peers, when not empty, are the only source addresses a check-in
	// with this ticket is accepted from: the target's own addresses. A
	// check-in with the right token from any other address is refused,
	// and the ticket stays valid for the real applet. Empty accepts any
	// address (a target behind NAT).
	Peers []netip.Addr
	// Refused, when set, is called for each refused check-in attempt
	// that concerns this ticket: one that presented its token from an
	// address not in Peers, or one from an address in Peers that
	// presented a wrong token or no hello. It is called on the server's
	// goroutine; keep it short. At most MaxRefusals calls are made per
	// ticket; later refusals are only logged.
	Refused func(Refusal)
}

// MaxRefusals bounds the Refused calls per ticket, so that a flood of
// bad check-ins cannot grow a session's event queue without bound.
const MaxRefusals = 16

// Refusal describes a refused check-in attempt. It never holds a token.
type Refusal struct {
	// Session is the session of the ticket the attempt concerns.
	Session string
	// Peer is the address the attempt came from.
	Peer netip.AddrPort
	// Reason says why it was refused, for example "wrong token" or
	// "token presented from an address that is not the target's".
	Reason string
	// Name is the computer name the attempt claimed in its hello, if any.
	Name string
	// Time is when it was refused.
	Time time.Time
}

// Listen starts listening and accepting check-ins in the background. It
// returns once the listener is bound; Close stops it.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil || s.closed {
		return errors.New("checkin: Listen called twice")
	}
	cert := s.Certificate
	if cert.Certificate == nil {
		c, err := selfSigned()
		if err != nil {
			return err
		}
		cert = c
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("checkin: certificate: %w", err)
	}
	addr := s.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("checkin: listen: %w", err)
	}
	s.ln = tls.NewListener(tcp, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	s.fp = Fingerprint(leaf)
	s.pending = make(map[[sha256.Size]byte]*Pending)
	s.conns = make(map[*Conn]struct{})
	s.wg.Add(1)
	go s.acceptLoop(s.ln)
	return nil
}

// ListenAddr returns the bound address, or nil before Listen.
func (s *Server) ListenAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// CertFingerprint returns the hex SHA-256 fingerprint of the certificate
// the server presents, or "" before Listen.
func (s *Server) CertFingerprint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fp
}

// Expect issues a one-time ticket for a session. dialAddr is the address
// the applet should dial (the console's address as the target sees it);
// empty means the listen address. The ticket expires after TokenTTL. It
// accepts a check-in from any address: ExpectWith restricts that.
func (s *Server) Expect(session, dialAddr string) (*Pending, error) {
	return s.ExpectWith(session, dialAddr, ExpectOptions{})
}

// ExpectWith is Expect with options: the addresses the check-in must come
// from, and a callback for refused attempts.
func (s *Server) ExpectWith(session, dialAddr string, o ExpectOptions) (*Pending, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil || s.closed {
		return nil, ErrClosed
	}
	if dialAddr == "" {
		dialAddr = s.ln.Addr().String()
	}
	ttl := s.TokenTTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	p := &Pending{
		s: s, key: sha256.Sum256([]byte(tok)), token: []byte(tok), session: session,
		ticket: Ticket{Addr: dialAddr, Fingerprint: s.fp, Token: tok, Expires: time.Now().Add(ttl)},
		ready:  make(chan *Conn, 1), done: make(chan struct{}), refused: o.Refused,
	}
	for _, a := range o.Peers {
		if a.IsValid() {
			p.peers = append(p.peers, a.Unmap())
		}
	}
	s.pending[p.key] = p
	p.timer = time.AfterFunc(ttl, func() { p.finish(ErrExpired) })
	return p, nil
}

// Ticket returns the ticket to hand to the applet.
func (p *Pending) Ticket() Ticket { return p.ticket }

// Wait blocks until the applet checks in, the ticket expires or is
// cancelled, the server closes, or ctx is done. The returned Conn belongs
// to the caller, who must Close it.
func (p *Pending) Wait(ctx context.Context) (*Conn, error) {
	select {
	case c := <-p.ready:
		return c, nil
	case <-p.done:
		select { // a check-in that raced with expiry still wins
		case c := <-p.ready:
			return c, nil
		default:
		}
		return nil, p.err
	case <-ctx.Done():
		p.Cancel()
		return nil, ctx.Err()
	}
}

// Cancel withdraws the ticket: a later check-in with it is refused. It is
// safe to call at any time, more than once.
func (p *Pending) Cancel() { p.finish(ErrClosed) }

func (p *Pending) finish(err error) {
	p.once.Do(func() {
		p.s.mu.Lock() // Expect sets p.timer under this lock
		p.timer.Stop()
		delete(p.s.pending, p.key)
		p.s.mu.Unlock()
		p.err = err
		close(p.done)
	})
}

// Reasons of a Refusal that callers may compare with.
const (
	// ReasonWrongPeer: the ticket's token came from an address the
	// ticket does not accept (ExpectOptions.Peers).
	ReasonWrongPeer = "token presented from an address that is not the target's"
	// ReasonWrongToken: the token matched no pending ticket.
	ReasonWrongToken = "wrong, reused or expired token"
)

// Errors of claim, for the log and the Refusal.
var (
	errWrongToken = errors.New(ReasonWrongToken)
	errWrongPeer  = errors.New(ReasonWrongPeer)
)

// claim removes and returns the pending ticket that matches tok and
// accepts check-ins from peer, or an error saying why none does, with the
// ticket concerned (nil when the token matched none). The map is keyed by
// the token's hash; the token itself is then compared in constant time. A
// right token from a wrong address leaves the ticket pending.
func (s *Server) claim(tok string, peer netip.Addr) (*Pending, error) {
	key := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	p, ok := s.pending[key]
	if !ok || subtle.ConstantTimeCompare(p.token, []byte(tok)) != 1 {
		s.mu.Unlock()
		return nil, errWrongToken
	}
	if !p.accepts(peer) {
		s.mu.Unlock()
		return p, errWrongPeer
	}
	delete(s.pending, key)
	s.mu.Unlock()
	if time.Now().After(p.ticket.Expires) {
		p.finish(ErrExpired)
		return nil, errors.New("expired token")
	}
	return p, nil
}

// accepts reports whether a check-in from peer may use p.
func (p *Pending) accepts(peer netip.Addr) bool {
	if len(p.peers) == 0 {
		return true
	}
	for _, a := range p.peers {
		if a == peer.Unmap() {
			return true
		}
	}
	return false
}

// refuse reports a refused attempt to the ticket it concerns: p when the
// token named one, otherwise every pending ticket restricted to peer's
// address (an attempt from a target with a wrong token). Attempts that
// concern no ticket are only logged.
func (s *Server) refuse(p *Pending, peer netip.AddrPort, reason, host string) {
	var to []*Pending
	s.mu.Lock()
	if p != nil {
		to = append(to, p)
	} else {
		for _, q := range s.pending {
			if len(q.peers) > 0 && q.accepts(peer.Addr()) {
				to = append(to, q)
			}
		}
	}
	var calls []*Pending
	for _, q := range to {
		if q.refused != nil && q.nref < MaxRefusals {
			q.nref++
			calls = append(calls, q)
		}
	}
	s.mu.Unlock()
	now := time.Now()
	for _, q := range calls {
		q.refused(Refusal{Session: q.session, Peer: peer, Reason: reason, Name: host, Time: now})
	}
}

func peerOf(c net.Conn) netip.AddrPort {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	peer := peerOf(c)
	log := s.logger().With("remote", peer.String())
	to := s.HandshakeTimeout
	if to <= 0 {
		to = 10 * time.Second
	}
	_ = c.SetDeadline(time.Now().Add(to))
	r := bufio.NewReaderSize(c, 4096)
	line, err := readLine(r)
	if err != nil {
		log.Warn("check-in: no hello", "err", err)
		s.refuse(nil, peer, "no hello ("+err.Error()+")", "")
		c.Close()
		return
	}
	var h Hello
	if err := json.Unmarshal(line, &h); err != nil || h.Version != protocolVersion {
		log.Warn("check-in refused: malformed hello or unknown protocol version", "version", h.Version)
		s.refuse(nil, peer, "malformed hello or unknown protocol version", "")
		writeJSON(c, reply{Error: "malformed hello or unsupported version"})
		c.Close()
		return
	}
	p, err := s.claim(h.Token, peer.Addr())
	h.Token = "" // never kept past this point
	if err != nil {
		log.Warn("check-in refused", "reason", err.Error(), "applet_host", h.Name)
		s.refuse(p, peer, err.Error(), h.Name)
		writeJSON(c, reply{Error: "token refused"})
		c.Close()
		return
	}
	if err := writeJSON(c, reply{OK: true, Session: p.session}); err != nil {
		log.Warn("check-in: reply failed", "session", p.session, "err", err)
		p.finish(fmt.Errorf("checkin: applet connection failed during check-in: %w", err))
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	conn := newConn(c, r, h, p.session, s)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	log.Info("check-in accepted", "session", p.session, "applet_host", h.Name, "pid", h.PID)
	p.ready <- conn
	p.finish(nil)
	conn.readLoop()
}

// Close stops listening, refuses every pending ticket and closes every
// accepted connection. It waits for the server's goroutines to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return s.closeErr
	}
	s.closed = true
	var pend []*Pending
	for _, p := range s.pending {
		pend = append(pend, p)
	}
	var conns []*Conn
	for c := range s.conns {
		conns = append(conns, c)
	}
	if s.ln != nil {
		s.closeErr = s.ln.Close()
	}
	s.mu.Unlock()
	for _, p := range pend {
		p.finish(ErrClosed)
	}
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	return s.closeErr
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func readLine(r *bufio.Reader) ([]byte, error) {
	line, isPrefix, err := r.ReadLine()
	if err != nil {
		return nil, err
	}
	if isPrefix {
		return nil, errors.New("line too long")
	}
	return line, nil
}

func writeJSON(c net.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

func selfSigned() (tls.Certificate, error) {
	return selfcert.New("lanconnect console (ephemeral)", 7*24*time.Hour)
}
