package krb

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oiweiwei/gokrb5.fork/v9/messages"
)

// Stats counts what a Cache sent to KDCs, message by message as seen on
// the wire (not what the library believes it sent).
type Stats struct {
	// ASExchanges counts TGTs obtained or attempted: one per credential
	// for the life of the Cache while the TGT is valid. The goal of a
	// bulk run is one.
	ASExchanges int64
	// ASReqs counts AS-REQ messages; a password logon sends two (the
	// first is answered "pre-authentication required").
	ASReqs int64
	// TGSReqs counts TGS-REQ messages: one per SPN per credential while
	// its ticket is valid.
	TGSReqs int64
	// Dials counts TCP connections attempted to KDCs.
	Dials int64
}

type counters struct {
	asExchanges, asReqs, tgsReqs, dials atomic.Int64
}

// ASN.1 application tags of the Kerberos messages (RFC 4120 5.10).
const (
	tagASReq    = 0x6a // [APPLICATION 10]
	tagTGSReq   = 0x6c // [APPLICATION 12]
	tagKRBError = 0x7e // [APPLICATION 30]
)

// exchangeLog records, for one exchange at a time, the KRB-ERROR the KDC
// answered last, which KDC it was and whether any KDC answered at all.
// The Kerberos library keeps only the error's text; the diagnoses need
// its code, server time and e-data.
type exchangeLog struct {
	mu       sync.Mutex
	krbErr   *messages.KRBError
	kdc      string
	answered bool
	dialErr  error
}

func (l *exchangeLog) reset() {
	l.mu.Lock()
	l.krbErr, l.kdc, l.answered, l.dialErr = nil, "", false, nil
	l.mu.Unlock()
}

func (l *exchangeLog) snapshot() (*messages.KRBError, string, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.krbErr, l.kdc, l.answered, l.dialErr
}

// kdcDialer is the Kerberos library's KDC dialer: TCP with a timeout and
// a deadline per connection, counting what it sends and recording the
// KRB-ERRORs it receives. It never dials anything but the addresses that
// Locate put into the library's configuration.
type kdcDialer struct {
	timeout time.Duration
	ctx     func() context.Context // the current exchange's context
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	n       *counters
	log     *exchangeLog
}

func (d *kdcDialer) Dial(network, addr string) (net.Conn, error) {
	d.n.dials.Add(1)
	ctx := d.ctx()
	if ctx == nil {
		ctx = context.Background() // a dial outside an exchange (the library's own renewal)
	}
	dctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	dial := d.dial
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	c, err := dial(dctx, network, addr)
	if err != nil {
		d.log.mu.Lock()
		d.log.dialErr, d.log.kdc = err, addr
		d.log.mu.Unlock()
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(d.timeout))
	// The exchange's context ends the connection early.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	return &kdcConn{Conn: c, d: d, ctx: ctx, addr: addr, stop: stop}, nil
}

// kdcConn counts the request written on it and parses the reply read
// from it when it is closed (TCP framing: a 4-byte length, RFC 4120 7.2.2).
type kdcConn struct {
	net.Conn
	d      *kdcDialer
	ctx    context.Context
	addr   string
	stop   func() bool
	wrote  bool
	in     bytes.Buffer
	closed bool
}

// SetDeadline replaces the library's fixed 5-second deadline with the
// Cache's Config.Timeout from now; the exchange's context still ends the
// connection at once.
func (c *kdcConn) SetDeadline(time.Time) error {
	if c.ctx.Err() != nil {
		return c.Conn.SetDeadline(time.Unix(1, 0))
	}
	return c.Conn.SetDeadline(time.Now().Add(c.d.timeout))
}

func (c *kdcConn) Write(b []byte) (int, error) {
	if !c.wrote && len(b) > 4 {
		c.wrote = true
		switch b[4] {
		case tagASReq:
			c.d.n.asReqs.Add(1)
		case tagTGSReq:
			c.d.n.tgsReqs.Add(1)
		}
	}
	return c.Conn.Write(b)
}

func (c *kdcConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.in.Len() < 1<<20 {
		c.in.Write(b[:n])
	}
	return n, err
}

func (c *kdcConn) Close() error {
	if !c.closed {
		c.closed = true
		c.stop()
		c.record()
	}
	return c.Conn.Close()
}

func (c *kdcConn) record() {
	raw := c.in.Bytes()
	if len(raw) < 5 {
		return
	}
	l := c.d.log
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answered, l.kdc = true, c.addr
	n := binary.BigEndian.Uint32(raw)
	body := raw[4:]
	if uint32(len(body)) < n || body[0] != tagKRBError {
		l.krbErr = nil // a reply that is not an error supersedes the last error
		return
	}
	var ke messages.KRBError
	if err := ke.Unmarshal(body[:n]); err == nil {
		l.krbErr = &ke
	}
}
