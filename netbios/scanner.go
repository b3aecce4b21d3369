package netbios

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
)

// Scanner sweeps addresses with node status requests, and asks broadcast
// addresses by name query, through one UDP socket. The zero Scanner is
// ready to use with the package defaults; a Scanner may run several scans
// at once, each with its own socket.
//
// Pacing. Every packet (first requests, retries, broadcast queries) draws
// from one token bucket of Rate packets per second, with bursts of at most
// 20 ms worth. An address that has not answered is asked again Retries
// times at even intervals within its wait, then dropped. The wait is
// Timeout until a node answers; from then on it adapts to the round trips
// seen: eight times the slowest first-request answer, but never less than
// a quarter of Timeout nor more than Timeout. On a LAN, where answers take
// a millisecond, an absent address is dropped after Timeout/4 (250 ms by
// default) instead of Timeout. So a sweep of N silent addresses takes
// about N/Rate + Timeout/4 once one node has answered (N/Rate + Timeout
// otherwise), and the addresses in flight at any moment number at most
// about Rate × Timeout: memory does not grow with the size of the range
// (a /16 is never expanded up front). Broadcast queries always get
// Timeout: answers to them come from nodes not yet measured. On Linux, a
// retry to an address that ARP has not resolved (its neighbour entry is
// INCOMPLETE or FAILED) is counted but not sent: the first request waits
// in the kernel until ARP resolves the address, and a retry would only
// wait beside it. So absent addresses on the local link cost one packet,
// and a sweep of them about N/Rate + Timeout/4.
//
// Matching. A node status answer counts when it comes from the address
// asked (from any port: Windows answers from 137, Samba from 137 too) with
// the transaction ID sent to that address. IDs are random per address.
// Broadcast answers are matched by the query's ID. Answers that match
// nothing, and malformed packets, are ignored.
//
// Broadcast. For each broadcast address, the scanner sends name queries
// for "*<00>" and for the master browsers' "__MSBROWSE__<01>" (and the
// <00> group of each of Workgroups), then asks every node that answers for
// its name table. Each new workgroup or domain learnt from a name table is
// queried the same way: not every stack answers the wildcard (nmbd does),
// but every member of a workgroup answers a broadcast query for its <00>
// group name. Node status requests are not broadcast: nodes ignore them.
//
// Broadcast answers are claims: anyone on the link may answer, as often as
// it likes. The scanner asks a responder for its name table only when its
// address lies in a swept range or in Targets.Subnets (see there), at most
// once per address (a set, O(1) per answer), and with at most 4,096
// responders waiting; the answers it drops are counted in
// Progress.Ignored. An answer never adds a name by itself: only the
// responder's own node status answer does.
type Scanner struct {
	// Rate is the pace in packets per second; zero means DefaultRate.
	Rate int
	// Retries is the number of repeats to an address that did not answer;
	// zero means DefaultRetries and a negative value none.
	Retries int
	// Timeout is the longest an address gets to answer, from the first
	// request; zero means DefaultTimeout. Once nodes have answered, an
	// address gets less (see Pacing above), but never less than Timeout/4.
	Timeout time.Duration
	// Port is the destination port; zero means 137.
	Port uint16
	// LocalAddr is the local address of the socket. The zero value is an
	// ephemeral port on all interfaces, which needs no privileges. Binding
	// port 137 (as root) reaches old stacks that answer only to 137, but
	// conflicts with a local nmbd.
	LocalAddr netip.AddrPort
	// Workgroups are group names to query by broadcast besides the ones
	// learnt during the scan.
	Workgroups []string
	// Progress, when set, is called from the sending goroutine at most
	// ten times a second and once at the end. It must return quickly.
	Progress func(Progress)
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Progress is a snapshot of a scan's progress.
type Progress struct {
	Total    uint64 // addresses to sweep (overlapping ranges counted twice)
	Swept    uint64 // addresses taken from the ranges so far
	Sent     uint64 // packets sent, retries and broadcast queries included
	Answered uint64 // addresses that answered a node status request
	// Ignored counts broadcast answers dropped: from outside the scanned
	// subnets, or while the queue of broadcast responders was full.
	Ignored uint64
	Done    bool // the scan is over
}

// Result is one node's answer to a node status request.
type Result struct {
	// Addr is the address that answered.
	Addr netip.Addr
	// Identity is the name, domain and roles read from the name table.
	Identity
	// Names is the full name table.
	Names []NodeName
	// MAC is the unit ID when it is not all zero.
	MAC net.HardwareAddr
	// Time is when the answer arrived; RTT is since the last request.
	Time time.Time
	RTT  time.Duration
	// ViaBroadcast is set when the node was found by a broadcast query.
	ViaBroadcast bool
}

// Host converts r to a discovery.Host with source SourceNetBIOS.
func (r Result) Host() discovery.Host {
	return discovery.Host{
		Name:      r.Name,
		Addrs:     []netip.Addr{r.Addr},
		Domain:    r.Domain,
		MAC:       r.MAC,
		Roles:     append([]discovery.Role(nil), r.Roles...),
		Sources:   []discovery.Source{discovery.SourceNetBIOS},
		FirstSeen: r.Time,
		LastSeen:  r.Time,
	}
}

func (s *Scanner) rate() float64 {
	if s.Rate <= 0 {
		return DefaultRate
	}
	return float64(s.Rate)
}

type probe struct {
	addr     netip.Addr // target, or the broadcast address
	id       uint16
	query    *Name // nil for node status; the name of a broadcast query
	sent     int
	lastSent time.Time
	done     bool
	viaBcast bool
}

type scan struct {
	s        *Scanner
	conn     *net.UDPConn
	log      *slog.Logger
	port     uint16
	retries  int
	timeout  time.Duration // the longest wait of an address (Timeout)
	interval time.Duration // timeout / (retries+1): the broadcast queries' interval
	bcast    []netip.Addr
	ranges   []discovery.AddrRange // broadcast answers must come from these
	scope    []netip.Prefix        // or these (Targets.answerScope)
	wake     chan struct{}

	mu       sync.Mutex
	fifo     []*probe // node status requests in send order, so due times ascend
	head     int
	qfifo    []*probe              // broadcast queries in send order
	rttMax   time.Duration         // slowest answer to a first request
	measured bool                  // rttMax holds a measure
	neigh    neighbours            // which addresses ARP has not resolved
	byAddr   map[netip.Addr]*probe // node status requests in flight
	byID     map[uint16]*probe     // broadcast queries in flight
	answered map[netip.Addr]bool   // grows with the hosts found, not the range
	urgent   []*probe              // node status requests for broadcast responders
	urgentAt map[netip.Addr]bool   // the addresses in urgent
	queries  []*probe              // broadcast queries not yet sent
	groups   map[string]bool       // workgroups queried
	progress Progress
}

// Scan sweeps t and streams a Result on out for each address that answers,
// as soon as the answer arrives, at most once per address. It returns nil
// when every address was asked and answered or timed out, ctx.Err() as soon
// as ctx is done, or an error when the socket cannot be opened or fails.
// Send errors to single addresses (no route, no ARP entry) are logged and
// skipped. Scan never closes out; a slow receiver delays reading answers
// (the socket buffers them) but not sending.
func (s *Scanner) Scan(ctx context.Context, t Targets, out chan<- Result) error {
	conn, err := listen(s.LocalAddr)
	if err != nil {
		return fmt.Errorf("netbios: %w", err)
	}
	// A large receive buffer absorbs bursts of answers while out is slow.
	// A large send buffer matters more: every packet to an address that
	// has no ARP entry yet waits in the kernel (charged to this socket)
	// until ARP gives up, about 3 s later; with the default buffer, a
	// sweep of an empty /24 blocks on it.
	_ = conn.SetReadBuffer(1 << 20)
	growSendBuffer(conn, 4<<20)
	c := &Client{Retries: s.Retries, Timeout: s.Timeout, Port: s.Port}
	sc := &scan{
		s:        s,
		conn:     conn,
		log:      logger(s.Logger),
		port:     c.port(),
		retries:  c.retries(),
		timeout:  c.timeout(),
		interval: c.timeout() / time.Duration(c.retries()+1),
		wake:     make(chan struct{}, 1),
		byAddr:   make(map[netip.Addr]*probe),
		byID:     make(map[uint16]*probe),
		answered: make(map[netip.Addr]bool),
		urgentAt: make(map[netip.Addr]bool),
		groups:   make(map[string]bool),
		ranges:   t.Ranges,
		scope:    t.answerScope(),
	}
	sc.progress.Total = t.Size()
	for _, b := range t.Broadcast {
		if b = b.Unmap(); b.Is4() {
			sc.bcast = append(sc.bcast, b)
		}
	}
	if len(sc.bcast) > 0 {
		sc.queueQuery(WildcardName())
		sc.queueQuery(Name{Raw: [16]byte([]byte(MSBrowse + "\x01"))})
		for _, w := range s.Workgroups {
			sc.queueGroup(w)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	readErr := make(chan error, 1)
	go func() { readErr <- sc.read(ctx, out) }()
	err = sc.send(ctx, t)
	conn.Close()
	rerr := <-readErr
	if cerr := ctx.Err(); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil {
		err = rerr
	}
	return err
}

// queueQuery queues a broadcast query for name on every broadcast address.
// Callers hold mu or own sc exclusively.
func (sc *scan) queueQuery(n Name) {
	for _, b := range sc.bcast {
		sc.queries = append(sc.queries, &probe{addr: b, query: &n})
	}
}

func (sc *scan) queueGroup(w string) {
	key := strings.ToUpper(w)
	if len(sc.bcast) == 0 || sc.groups[key] {
		return
	}
	sc.groups[key] = true
	if n, err := NewName(w, SuffixWorkstation); err == nil {
		sc.queueQuery(n)
	}
}

func (sc *scan) signal() {
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

func (sc *scan) send(ctx context.Context, t Targets) error {
	next, stopIter := iter.Pull(t.All())
	defer stopIter()
	sweepDone := false
	rate := sc.s.rate()
	burst := max(1, rate/50)
	tokens := burst
	last := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var lastProgress time.Time
	nbstat, _ := NewNodeStatusRequest(0, WildcardName()).Pack()
	pkt := make([]byte, 0, 128)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		tokens = min(burst, tokens+now.Sub(last).Seconds()*rate)
		last = now
		if sc.s.Progress != nil && now.Sub(lastProgress) >= 100*time.Millisecond {
			lastProgress = now
			sc.mu.Lock()
			p := sc.progress
			sc.mu.Unlock()
			sc.s.Progress(p)
		}

		sc.mu.Lock()
		p, wait, dueRetry := sc.takeDue(now, tokens >= 1)
		work := dueRetry || p != nil || len(sc.urgent) > 0 || len(sc.queries) > 0 || !sweepDone
		if p == nil && tokens >= 1 {
			for p == nil && len(sc.urgent) > 0 {
				p, sc.urgent = sc.urgent[0], sc.urgent[1:]
				delete(sc.urgentAt, p.addr)
				if sc.answered[p.addr] || sc.byAddr[p.addr] != nil {
					p = nil // the sweep got there first
				}
			}
			if p == nil && len(sc.queries) > 0 {
				p, sc.queries = sc.queries[0], sc.queries[1:]
			}
			for p == nil && !sweepDone {
				a, ok := next()
				if !ok {
					sweepDone = true
					break
				}
				sc.progress.Swept++
				if sc.answered[a] || sc.byAddr[a] != nil {
					continue
				}
				p = &probe{addr: a}
			}
		}
		if p != nil {
			if p.sent == 0 {
				p.id = uint16(rand.Uint32())
				if p.query != nil {
					for sc.byID[p.id] != nil {
						p.id++
					}
					sc.byID[p.id] = p
				} else {
					sc.byAddr[p.addr] = p
				}
			}
			p.sent++
			p.lastSent = now
			if p.query != nil {
				sc.qfifo = append(sc.qfifo, p)
			} else {
				sc.fifo = append(sc.fifo, p)
			}
			sc.progress.Sent++
			var err error
			if p.query != nil {
				pkt, err = NewNameQueryRequest(p.id, *p.query, true).AppendPack(pkt[:0])
			} else {
				pkt = append(pkt[:0], nbstat...)
				pkt[0], pkt[1] = byte(p.id>>8), byte(p.id)
			}
			sc.mu.Unlock()
			tokens--
			if err == nil {
				_, err = sc.conn.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(p.addr, sc.port))
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, net.ErrClosed) {
					return err
				}
				sc.log.Debug("netbios: send failed", "addr", p.addr, "err", err)
			}
			continue
		}
		finished := sweepDone && len(sc.urgent) == 0 && len(sc.queries) == 0 && sc.head == len(sc.fifo) && len(sc.qfifo) == 0
		if finished {
			sc.progress.Done = true
			p := sc.progress
			sc.mu.Unlock()
			if sc.s.Progress != nil {
				sc.s.Progress(p)
			}
			return nil
		}
		sc.mu.Unlock()
		if work && tokens < 1 {
			wait = min(wait, time.Duration((1-tokens)/rate*float64(time.Second))+time.Microsecond)
		}
		if sc.s.Progress != nil {
			wait = min(wait, 100*time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-sc.wake:
			timer.Stop() // Go 1.23 timers: no stale value to drain
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// takeDue drops the probes whose time is up and returns the first one due
// for a retry, when canSend says a token is there. Otherwise it returns
// how long until the next probe is due, and whether one is due now
// (waiting for a token, not for a deadline). Callers hold mu.
func (sc *scan) takeDue(now time.Time, canSend bool) (p *probe, wait time.Duration, due bool) {
	wait = time.Hour
	// Broadcast queries: a few, each with the full timeout.
	for len(sc.qfifo) > 0 {
		h := sc.qfifo[0]
		if h.done {
			sc.qfifo = sc.qfifo[1:]
			continue
		}
		if at := h.lastSent.Add(sc.interval); now.Before(at) {
			wait = at.Sub(now)
			break
		}
		if h.sent > sc.retries {
			sc.retire(h)
			sc.qfifo = sc.qfifo[1:]
			continue
		}
		if canSend {
			sc.qfifo = sc.qfifo[1:]
			return h, 0, true
		}
		due = true
		break
	}
	// Node status requests: one interval for all at any moment, so the
	// FIFO's due times ascend.
	iv := sc.statusInterval()
	for sc.head < len(sc.fifo) {
		h := sc.fifo[sc.head]
		if h.done {
			sc.pop()
			continue
		}
		if at := h.lastSent.Add(iv); now.Before(at) {
			wait = min(wait, at.Sub(now))
			break
		}
		if h.sent > sc.retries {
			sc.retire(h)
			sc.pop()
			continue
		}
		if sc.neigh.unresolved(h.addr, now) {
			// ARP has not resolved the address (absent, or slow to
			// answer): the first request still waits in the kernel
			// and goes out if ARP resolves it; a retry would wait
			// beside it. Count the retry as made, without a packet,
			// so that the tokens go to the sweep.
			sc.pop()
			h.sent++
			h.lastSent = now
			sc.fifo = append(sc.fifo, h)
			continue
		}
		if canSend {
			sc.pop()
			return h, 0, true
		}
		due = true
		break
	}
	return nil, wait, due
}

// Adaptive wait: an address gets rttFactor times the slowest round trip
// seen, within [timeout/minWaitDivisor, timeout].
const (
	rttFactor      = 8
	minWaitDivisor = 4
)

// statusInterval is the time between a node status request and its
// retry (or its address's retirement): the address's wait divided by the
// attempts. The wait is the timeout until a node has answered a first
// request, then adapts to the slowest such answer (see Scanner). Callers
// hold mu.
func (sc *scan) statusInterval() time.Duration {
	w := sc.timeout
	if sc.measured {
		w = min(sc.timeout, max(sc.timeout/minWaitDivisor, rttFactor*sc.rttMax))
	}
	return w / time.Duration(sc.retries+1)
}

func (sc *scan) pop() {
	sc.fifo[sc.head] = nil
	sc.head++
	if sc.head > 256 && sc.head*2 > len(sc.fifo) {
		n := copy(sc.fifo, sc.fifo[sc.head:])
		clear(sc.fifo[n:])
		sc.fifo = sc.fifo[:n]
		sc.head = 0
	}
}

// retire forgets a probe whose time is up.
func (sc *scan) retire(p *probe) {
	p.done = true
	if p.query != nil {
		delete(sc.byID, p.id)
	} else if sc.byAddr[p.addr] == p {
		delete(sc.byAddr, p.addr)
	}
}

func (sc *scan) read(ctx context.Context, out chan<- Result) error {
	buf := make([]byte, 2048)
	var m Message
	for {
		n, from, err := sc.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("netbios: %w", err)
		}
		now := time.Now()
		h, err := ParseHeader(buf[:n])
		if err != nil || !h.Response || h.Opcode != OpcodeQuery {
			continue
		}
		src := from.Addr().Unmap()
		sc.mu.Lock()
		p := sc.byAddr[src]
		isStatus := p != nil && p.id == h.ID
		var q *probe
		if !isStatus {
			q = sc.byID[h.ID]
		}
		sc.mu.Unlock()
		if !isStatus && q == nil {
			continue
		}
		if err := m.Unpack(buf[:n]); err != nil {
			sc.log.Debug("netbios: malformed answer", "from", from, "err", err)
			continue
		}
		if q != nil {
			sc.broadcastAnswer(src, q, &m)
			continue
		}
		body, err := m.NodeStatus()
		var rerr *RCodeError
		if err != nil && !errors.As(err, &rerr) {
			sc.log.Debug("netbios: answer without a name table", "from", from, "err", err)
			continue
		}
		sc.mu.Lock()
		if sc.byAddr[src] != p || p.done {
			sc.mu.Unlock()
			continue // answered meanwhile, by a duplicate
		}
		p.done = true
		delete(sc.byAddr, src)
		sc.answered[src] = true
		sc.progress.Answered++
		r := Result{Addr: src, Time: now, RTT: now.Sub(p.lastSent), ViaBroadcast: p.viaBcast}
		if p.sent == 1 {
			// Only a first request's answer is a round trip for sure
			// (Karn): after a retry, it may answer the first.
			sc.rttMax = max(sc.rttMax, r.RTT)
			if !sc.measured {
				sc.measured = true
				sc.signal() // the waits have just shrunk
			}
		}
		if body != nil {
			r.Names = body.Names
			r.Identity = Identify(body.Names)
			r.MAC = body.MAC()
			if r.Domain != "" {
				sc.queueGroup(r.Domain)
				sc.signal()
			}
		}
		sc.mu.Unlock()
		select {
		case out <- r:
		case <-ctx.Done():
			return nil
		}
	}
}

// maxBroadcastQueue bounds the node status requests waiting for broadcast
// responders. A flood of answers (every address of a /16, or a spoofer)
// beyond it is dropped; the sweep still reaches the addresses it covers.
const maxBroadcastQueue = 4096

// broadcastAnswer queues a node status request to a node that answered a
// broadcast query, once per address (a set, O(1)), when it lies in the
// scanned subnets and the queue has room.
func (sc *scan) broadcastAnswer(src netip.Addr, q *probe, m *Message) {
	if _, err := m.NameQueryAnswer(); err != nil {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if q.done || sc.answered[src] || sc.byAddr[src] != nil || sc.urgentAt[src] {
		return
	}
	if !sc.inScope(src) {
		sc.progress.Ignored++
		sc.log.Debug("netbios: broadcast answer from outside the scanned subnets ignored", "from", src)
		return
	}
	if len(sc.urgent) >= maxBroadcastQueue {
		sc.progress.Ignored++
		sc.log.Debug("netbios: broadcast answer dropped: queue full", "from", src)
		return
	}
	sc.log.Debug("netbios: broadcast answer", "from", src, "name", q.query.String())
	sc.urgent = append(sc.urgent, &probe{addr: src, viaBcast: true})
	sc.urgentAt[src] = true
	sc.signal()
}

// inScope reports whether a broadcast answer from a may be probed: a lies
// in a swept range or a scanned subnet.
func (sc *scan) inScope(a netip.Addr) bool {
	for _, p := range sc.scope {
		if p.Contains(a) {
			return true
		}
	}
	for _, r := range sc.ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}
