// Package nbnstest is a NetBIOS name service responder for tests and
// benchmarks: each fake host listens on its own loopback address and
// answers node status requests and name queries as nmbd would, and an
// optional "broadcast" address relays broadcast name queries to the hosts
// that own the name, which answer from their own addresses.
//
// It only ever binds loopback addresses. It is not an nmbd: it registers
// and defends nothing.
package nbnstest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/lanconnect/lanconnect/netbios"
)

// Node is one fake NetBIOS node (a computer answering name queries).
type Node struct {
	Addr  netip.Addr
	Names []netbios.NodeName
	MAC   [6]byte

	// Silent makes the host ignore everything while set.
	Silent atomic.Bool
	// DropFirst makes the host ignore that many node status requests.
	DropFirst atomic.Int32
	// WrongID makes the host answer with a transaction ID off by one.
	WrongID atomic.Bool
	// Garbage makes the host send a malformed packet before each answer.
	Garbage atomic.Bool
	// Requests counts the node status requests received.
	Requests atomic.Int32

	conn *net.UDPConn
}

// Workstation returns a host with the names nmbd registers for a
// standalone server in workgroup wg: NAME<00>, <03>, <20> and WG<00>,
// <1e> groups.
func Workstation(addr netip.Addr, name, wg string) *Node {
	act, grp := netbios.NameFlagActive, netbios.NameFlagActive|netbios.NameFlagGroup
	return &Node{Addr: addr, Names: []netbios.NodeName{
		{Name: netbios.MustName(name, 0x00), Flags: act},
		{Name: netbios.MustName(name, 0x03), Flags: act},
		{Name: netbios.MustName(name, 0x20), Flags: act},
		{Name: netbios.MustName(wg, 0x00), Flags: grp},
		{Name: netbios.MustName(wg, 0x1e), Flags: grp},
	}}
}

// MakeMasterBrowser adds the master browser names for h's workgroup. Call
// it before Start.
func (h *Node) MakeMasterBrowser(wg string) {
	act, grp := netbios.NameFlagActive, netbios.NameFlagActive|netbios.NameFlagGroup
	h.Names = append(h.Names,
		netbios.NodeName{Name: netbios.MustName(wg, 0x1d), Flags: act},
		netbios.NodeName{Name: netbios.Name{Raw: [16]byte([]byte(netbios.MSBrowse + "\x01"))}, Flags: grp})
}

// Net is a set of running fake hosts sharing one port.
type Net struct {
	Port  uint16
	Nodes []*Node
	// Bcast is the address that relays broadcast queries, if started
	// with one.
	Bcast netip.Addr

	bconn *net.UDPConn
	wg    sync.WaitGroup
}

// Start binds every host (and bcast, when valid) on one common port and
// serves them until Close. All addresses must be loopback.
func Start(hosts []*Node, bcast netip.Addr) (*Net, error) {
	for try := 0; try < 20; try++ {
		n, err := start(hosts, bcast, uint16(20000+rand.IntN(40000)))
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, errInUse) {
			return nil, err
		}
	}
	return nil, errors.New("nbnstest: no free common port")
}

// StartPort is Start on a given port (137 to look like the real thing).
func StartPort(hosts []*Node, bcast netip.Addr, port uint16) (*Net, error) {
	return start(hosts, bcast, port)
}

var errInUse = errors.New("port in use")

func start(hosts []*Node, bcast netip.Addr, port uint16) (*Net, error) {
	n := &Net{Port: port, Nodes: hosts, Bcast: bcast}
	bind := func(a netip.Addr) (*net.UDPConn, error) {
		if !a.IsLoopback() {
			return nil, fmt.Errorf("nbnstest: %v is not a loopback address", a)
		}
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errInUse, err)
		}
		return c, nil
	}
	for _, h := range hosts {
		c, err := bind(h.Addr)
		if err != nil {
			n.Close()
			return nil, err
		}
		h.conn = c
	}
	if bcast.IsValid() {
		c, err := bind(bcast)
		if err != nil {
			n.Close()
			return nil, err
		}
		n.bconn = c
		n.wg.Add(1)
		go n.serveBroadcast()
	}
	for _, h := range hosts {
		n.wg.Add(1)
		go n.serve(h)
	}
	return n, nil
}

// Close stops every host and waits for them.
func (n *Net) Close() {
	for _, h := range n.Nodes {
		if h.conn != nil {
			h.conn.Close()
		}
	}
	if n.bconn != nil {
		n.bconn.Close()
	}
	n.wg.Wait()
}

// Stop stops one host: from now on its address does not answer.
func (h *Node) Stop() { h.conn.Close() }

func (n *Net) serve(h *Node) {
	defer n.wg.Done()
	buf := make([]byte, 1500)
	for {
		sz, from, err := h.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var m netbios.Message
		if m.Unpack(buf[:sz]) != nil || m.Response || len(m.Questions) != 1 {
			continue
		}
		q := m.Questions[0]
		if q.Type == netbios.TypeNBSTAT {
			h.Requests.Add(1)
		}
		if h.Silent.Load() {
			continue
		}
		var resp *netbios.Message
		switch q.Type {
		case netbios.TypeNBSTAT:
			if h.DropFirst.Load() > 0 {
				h.DropFirst.Add(-1)
				continue
			}
			resp = h.status(m.ID)
		case netbios.TypeNB:
			resp = h.query(m.ID, q.Name, true)
		}
		if resp == nil {
			continue
		}
		if h.WrongID.Load() {
			resp.ID++
		}
		if h.Garbage.Load() {
			h.conn.WriteToUDPAddrPort([]byte{byte(resp.ID >> 8), byte(resp.ID), 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0x20, 'Z'}, from)
		}
		if b, err := resp.Pack(); err == nil {
			h.conn.WriteToUDPAddrPort(b, from)
		}
	}
}

func (n *Net) serveBroadcast() {
	defer n.wg.Done()
	buf := make([]byte, 1500)
	for {
		sz, from, err := n.bconn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var m netbios.Message
		if m.Unpack(buf[:sz]) != nil || m.Response || len(m.Questions) != 1 || m.Questions[0].Type != netbios.TypeNB {
			continue
		}
		for _, h := range n.Nodes {
			if h.Silent.Load() {
				continue
			}
			if resp := h.query(m.ID, m.Questions[0].Name, false); resp != nil {
				if b, err := resp.Pack(); err == nil {
					h.conn.WriteToUDPAddrPort(b, from)
				}
			}
		}
	}
}

func (h *Node) status(id uint16) *netbios.Message {
	body := &netbios.NodeStatusBody{Names: h.Names, StatsLen: 46}
	body.Stats.UnitID = h.MAC
	return &netbios.Message{
		Header:  netbios.Header{ID: id, Response: true, Authoritative: true},
		Answers: []netbios.Resource{{Name: netbios.WildcardName(), Type: netbios.TypeNBSTAT, Class: netbios.ClassINET, Body: body}},
	}
}

// query answers a name query: positive when h owns the name; negative
// (unicast only, as nodes stay silent on broadcast) otherwise.
func (h *Node) query(id uint16, name netbios.Name, unicast bool) *netbios.Message {
	for _, n := range h.Names {
		if n.Name.EqualFold(name) {
			flags := netbios.NBFlags(0)
			if n.Flags.Group() {
				flags |= 0x8000
			}
			return &netbios.Message{
				Header: netbios.Header{ID: id, Response: true, Authoritative: true, RecursionDesired: true},
				Answers: []netbios.Resource{{Name: name, Type: netbios.TypeNB, Class: netbios.ClassINET, TTL: 300000,
					Body: &netbios.NBBody{Entries: []netbios.NBEntry{{Flags: flags, Addr: h.Addr}}}}},
			}
		}
	}
	if !unicast {
		return nil
	}
	return &netbios.Message{
		Header:  netbios.Header{ID: id, Response: true, Authoritative: true, RecursionDesired: true, RCode: netbios.RCodeNameError},
		Answers: []netbios.Resource{{Name: name, Type: netbios.TypeNull, Class: netbios.ClassINET, Body: &netbios.RawBody{}}},
	}
}
