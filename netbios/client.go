package netbios

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// Defaults of Client and Scanner.
const (
	// DefaultPort is the name service port, UDP 137.
	DefaultPort = 137
	// DefaultTimeout is how long a host gets to answer, from the first
	// request to giving up (retries are spread over it). One second is
	// nbtscan's default too; on a LAN answers take a few milliseconds.
	DefaultTimeout = time.Second
	// DefaultRetries is how many times a request is repeated when no
	// answer came: one, which recovers a packet lost to ARP resolution on
	// a busy segment without doubling the traffic to empty addresses.
	DefaultRetries = 1
	// DefaultRate is the Scanner's pace in packets per second. 500/s is a
	// /24 in half a second and a /22 in two, while staying far below what
	// makes switches, Wi-Fi access points and ARP tables suffer (every
	// probe to a new address costs an ARP broadcast).
	DefaultRate = 500
)

// ErrTimeout is returned when no answer came within the timeout and
// retries.
var ErrTimeout = errors.New("netbios: no answer")

// Client sends single name service requests. The zero Client is ready to
// use with the defaults above.
//
// Each call uses a UDP socket of its own. A Client does not cache answers
// and is safe for concurrent use.
type Client struct {
	// Timeout is how long to wait for an answer, over all attempts; zero
	// means DefaultTimeout. Retries are sent at even intervals within it.
	Timeout time.Duration
	// Retries is the number of repeats after the first request; zero means
	// DefaultRetries and a negative value means none.
	Retries int
	// Port is the destination port; zero means 137.
	Port uint16
	// LocalAddr is the local address to bind. The zero value is an
	// ephemeral port on all interfaces, which works without privileges.
	// Some old stacks answer only to port 137: bind it (as root) with
	// netip.AddrPortFrom(netip.IPv4Unspecified(), 137).
	LocalAddr netip.AddrPort
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

func (c *Client) timeout() time.Duration {
	if c == nil || c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c *Client) retries() int {
	switch {
	case c == nil || c.Retries == 0:
		return DefaultRetries
	case c.Retries < 0:
		return 0
	}
	return c.Retries
}

func (c *Client) port() uint16 {
	if c == nil || c.Port == 0 {
		return DefaultPort
	}
	return c.Port
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func listen(local netip.AddrPort) (*net.UDPConn, error) {
	if !local.Addr().IsValid() {
		local = netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port())
	}
	// Go sets SO_BROADCAST on UDP sockets, so broadcasts need nothing more.
	return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(local))
}

// exchange sends req to dst, retrying, and calls accept for each response
// with req's ID, until accept returns true or the time is up. With all set,
// it listens for the whole timeout (broadcast) and returns nil at the end.
func (c *Client) exchange(ctx context.Context, req *Message, dst netip.AddrPort, all bool, accept func(from netip.Addr, m *Message) bool) error {
	conn, err := listen(c.LocalAddr)
	if err != nil {
		return fmt.Errorf("netbios: %w", err)
	}
	defer conn.Close()
	// Closing the socket unblocks a pending read at once on cancellation.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	req.ID = uint16(rand.Uint32())
	pkt, err := req.Pack()
	if err != nil {
		return err
	}
	attempts := c.retries() + 1
	interval := c.timeout() / time.Duration(attempts)
	log := logger(c.Logger)
	buf := make([]byte, 1500)
	var m Message
	for i := range attempts {
		if _, err := conn.WriteToUDPAddrPort(pkt, dst); err != nil {
			return fmt.Errorf("netbios: send to %v: %w", dst, err)
		}
		deadline := time.Now().Add(interval)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		conn.SetReadDeadline(deadline)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					if err := ctxErr(ctx); err != nil {
						return err
					}
					break
				}
				return fmt.Errorf("netbios: %w", err)
			}
			h, err := ParseHeader(buf[:n])
			if err != nil || !h.Response || h.ID != req.ID || h.Opcode != OpcodeQuery {
				continue
			}
			if err := m.Unpack(buf[:n]); err != nil {
				log.Debug("netbios: bad response", "from", from, "err", err)
				continue
			}
			if accept(from.Addr().Unmap(), &m) && !all {
				return nil
			}
		}
		if all && i == attempts-1 {
			return nil
		}
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return ErrTimeout
}

// ctxErr is ctx.Err(), or DeadlineExceeded as soon as the deadline has
// passed (a read deadline set from it may fire before ctx's own timer).
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// NodeStatus asks addr for its name table with a node status request for
// "*". The answer must come from addr (any port: Windows answers from 137)
// with the request's transaction ID. It returns ErrTimeout when addr does
// not answer, and an *RCodeError for an error response. Malformed answers
// are logged and ignored, as if they were never sent.
func (c *Client) NodeStatus(ctx context.Context, addr netip.Addr) (*NodeStatusBody, error) {
	addr = addr.Unmap()
	var body *NodeStatusBody
	var rerr error
	err := c.exchange(ctx, NewNodeStatusRequest(0, WildcardName()), netip.AddrPortFrom(addr, c.port()), false,
		func(from netip.Addr, m *Message) bool {
			if from != addr {
				return false
			}
			body, rerr = m.NodeStatus()
			return true
		})
	if err != nil {
		return nil, err
	}
	return body, rerr
}

// Query resolves name by a unicast name query to server (a WINS server, or
// the node itself). A negative answer gives an error matching
// ErrNameNotFound; no answer gives ErrTimeout.
func (c *Client) Query(ctx context.Context, name Name, server netip.Addr) ([]NBEntry, error) {
	server = server.Unmap()
	var entries []NBEntry
	var qerr error
	err := c.exchange(ctx, NewNameQueryRequest(0, name, false), netip.AddrPortFrom(server, c.port()), false,
		func(from netip.Addr, m *Message) bool {
			if from != server {
				return false
			}
			entries, qerr = m.NameQueryAnswer()
			return true
		})
	if err != nil {
		return nil, err
	}
	return entries, qerr
}

// Answer is one node's reply to a broadcast name query.
type Answer struct {
	From    netip.Addr // the address the reply came from
	Entries []NBEntry  // what the node says it owns the name at
}

// BroadcastQuery sends a broadcast name query for name to bcast (an
// interface's broadcast address, such as 192.168.1.255) and collects the
// positive answers until the timeout. Every owner of a unique name, and
// every member of a group name, answers; negative answers are ignored (B
// nodes do not send them). It returns the answers in arrival order, one per
// responding address, and no error when nobody answered.
func (c *Client) BroadcastQuery(ctx context.Context, name Name, bcast netip.Addr) ([]Answer, error) {
	var answers []Answer
	seen := make(map[netip.Addr]bool)
	err := c.exchange(ctx, NewNameQueryRequest(0, name, true), netip.AddrPortFrom(bcast.Unmap(), c.port()), true,
		func(from netip.Addr, m *Message) bool {
			entries, err := m.NameQueryAnswer()
			if err != nil || seen[from] {
				return false
			}
			seen[from] = true
			answers = append(answers, Answer{From: from, Entries: entries})
			return false
		})
	return answers, err
}
