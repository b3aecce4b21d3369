package checkin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"time"
)

// Conn is the console's side of an applet that has checked in. It is safe
// for concurrent use.
type Conn struct {
	// Hello is what the applet said about itself (without its token).
	Hello Hello
	// Session is the session the ticket was issued for.
	Session string

	c    net.Conn
	r    *bufio.Reader
	s    *Server
	wmu  sync.Mutex
	mu   sync.Mutex
	last time.Time
	bye  bool
	done chan struct{}
	err  error
	once sync.Once
}

func newConn(c net.Conn, r *bufio.Reader, h Hello, session string, s *Server) *Conn {
	return &Conn{Hello: h, Session: session, c: c, r: r, s: s, last: time.Now(), done: make(chan struct{})}
}

// readLoop runs on the server goroutine that accepted the connection until
// the connection ends.
func (c *Conn) readLoop() {
	for {
		line, err := readLine(c.r)
		if err != nil {
			c.end(err)
			return
		}
		var m message
		if json.Unmarshal(line, &m) == nil {
			switch m.Type {
			case "heartbeat":
				c.mu.Lock()
				c.last = time.Now()
				c.mu.Unlock()
			case "bye":
				c.mu.Lock()
				c.bye = true
				c.mu.Unlock()
			}
		}
	}
}

// SaidGoodbye reports whether the applet said goodbye: it answered the
// console's stop request and is exiting on its own. A launcher then need
// not (and should not) kill its process. Applets built before the
// goodbye existed never say it.
func (c *Conn) SaidGoodbye() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bye
}

func (c *Conn) end(err error) {
	c.once.Do(func() {
		c.err = err
		c.c.Close()
		close(c.done)
		if c.s != nil {
			c.s.forget(c)
		}
	})
}

// Done is closed when the connection has ended: the applet exited, the
// network dropped, or Close was called.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is up.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// LastHeartbeat returns when the applet last reported (check-in counts).
func (c *Conn) LastHeartbeat() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Stop asks the applet to exit and waits until it closes the connection or
// ctx is done. It does not kill anything: a launcher's handle does that.
func (c *Conn) Stop(ctx context.Context) error {
	c.wmu.Lock()
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	err := writeJSON(c.c, message{Type: "stop", Time: time.Now()})
	c.wmu.Unlock()
	if err != nil {
		select {
		case <-c.done:
			return nil // already gone: that is what we wanted
		default:
		}
		return err
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the connection. An applet treats a dropped connection as a
// request to exit.
func (c *Conn) Close() error {
	c.end(ErrClosed)
	return nil
}

// AppletConn is the applet's side of a check-in.
type AppletConn struct {
	c       net.Conn
	r       *bufio.Reader
	session string
}

// Dial checks in with the console described by t: it dials with TLS, pins
// the console's certificate by fingerprint, and presents the token. hello's
// Token and Version are filled in from t. Errors match ErrBadTicket,
// ErrFingerprint or ErrRejected where those apply.
func Dial(ctx context.Context, t Ticket, hello Hello) (*AppletConn, error) {
	return dial(ctx, t, hello, nil)
}

// dial is Dial from a chosen local address (nil: any).
func dial(ctx context.Context, t Ticket, hello Hello, local net.Addr) (*AppletConn, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	d := tlsDialer(t.Fingerprint)
	d.NetDialer.LocalAddr = local
	nc, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		if errors.Is(err, errPin) {
			return nil, ErrFingerprint
		}
		return nil, err
	}
	hello.Version, hello.Token = protocolVersion, t.Token
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	} else {
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if err := writeJSON(nc, hello); err != nil {
		nc.Close()
		return nil, err
	}
	r := bufio.NewReaderSize(nc, 4096)
	line, err := readLine(r)
	if err != nil {
		nc.Close()
		return nil, err
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		nc.Close()
		return nil, err
	}
	if !rep.OK {
		nc.Close()
		return nil, ErrRejected
	}
	_ = nc.SetDeadline(time.Time{})
	return &AppletConn{c: nc, r: r, session: rep.Session}, nil
}

// Session returns the console's session ID for this applet.
func (a *AppletConn) Session() string { return a.session }

// Run sends a heartbeat every interval (zero means 15 s) and returns nil
// when the console asks the applet to stop, an error wrapping ErrClosed
// when the connection drops, or ctx.Err(). It closes the connection before
// it returns.
func (a *AppletConn) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = 15 * time.Second
	}
	defer a.c.Close()
	stop := make(chan error, 1)
	go func() {
		for {
			line, err := readLine(a.r)
			if err != nil {
				stop <- errors.Join(ErrClosed, err)
				return
			}
			var m message
			if json.Unmarshal(line, &m) == nil && m.Type == "stop" {
				// Say goodbye, so that the console does not kill
				// the process by ID after it has exited.
				_ = a.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_ = writeJSON(a.c, message{Type: "bye", Time: time.Now()})
				stop <- nil
				return
			}
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case err := <-stop:
			return err
		case <-ctx.Done():
			a.c.Close()
			<-stop
			return ctx.Err()
		case <-tick.C:
			_ = a.c.SetWriteDeadline(time.Now().Add(interval))
			if err := writeJSON(a.c, message{Type: "heartbeat", Time: time.Now()}); err != nil {
				a.c.Close()
				<-stop
				return errors.Join(ErrClosed, err)
			}
		}
	}
}

// Close ends the connection without waiting for the console.
func (a *AppletConn) Close() error { return a.c.Close() }
