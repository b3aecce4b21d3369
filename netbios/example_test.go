package netbios_test

import (
	"errors"
	"fmt"

	"github.com/lanconnect/lanconnect/netbios"
)

// Build a node status (NBSTAT) request, encode it, and decode the answer
// a Windows computer would send: its name table, from which Identify reads
// the computer name, the workgroup and the roles. The answer is built here
// with the package's own types; a scanner reads it from UDP port 137.
func Example_nodeStatus() {
	req := netbios.NewNodeStatusRequest(0x2a17, netbios.WildcardName())
	wire, err := req.Pack()
	if err != nil {
		fmt.Println(err)
		return
	}
	q := req.Questions[0]
	fmt.Printf("request: %d bytes, %s %s, first-level encoding %s\n", len(wire), q.Name, q.Type, wire[13:45])

	active, group := netbios.NameFlagActive, netbios.NameFlagActive|netbios.NameFlagGroup
	resp := &netbios.Message{
		Header: netbios.Header{ID: req.ID, Response: true, Authoritative: true},
		Answers: []netbios.Resource{{
			Name: q.Name, Type: netbios.TypeNBSTAT, Class: netbios.ClassINET,
			Body: &netbios.NodeStatusBody{
				Names: []netbios.NodeName{
					{Name: netbios.MustName("HERON-01", netbios.SuffixWorkstation), Flags: active},
					{Name: netbios.MustName("LAB", netbios.SuffixWorkstation), Flags: group},
					{Name: netbios.MustName("HERON-01", netbios.SuffixFileServer), Flags: active},
					{Name: netbios.MustName("LAB", netbios.SuffixBrowserElection), Flags: group},
				},
				Stats:    netbios.Statistics{UnitID: [6]byte{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}},
				StatsLen: 46,
			},
		}},
	}
	packet, err := resp.Pack()
	if err != nil {
		fmt.Println(err)
		return
	}

	// What a receiver does with a datagram: check the header cheaply, then
	// parse it in full.
	h, err := netbios.ParseHeader(packet)
	if err != nil || !h.Response || h.ID != req.ID {
		fmt.Println("not our answer:", err)
		return
	}
	var m netbios.Message
	if err := m.Unpack(packet); err != nil {
		fmt.Println(err)
		return
	}
	body, err := m.NodeStatus()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("response: %d bytes, MAC %s\n", len(packet), body.MAC())
	for _, n := range body.Names {
		fmt.Println(" ", n)
	}
	id := netbios.Identify(body.Names)
	fmt.Printf("computer %s in %s, roles %v\n", id.Name, id.Domain, id.Roles)

	// A truncated packet is an error, never a panic.
	err = m.Unpack(packet[:40])
	fmt.Println(err, errors.Is(err, netbios.ErrTruncated))
	// Output:
	// request: 50 bytes, *<00> NBSTAT, first-level encoding CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
	// response: 175 bytes, MAC 00:15:5d:01:02:03
	//   HERON-01<00> UNIQUE
	//   LAB<00> GROUP
	//   HERON-01<20> UNIQUE
	//   LAB<1e> GROUP
	// computer HERON-01 in LAB, roles [workstation file-server browser-election]
	// netbios: parsing answer 0 at offset 12: packet truncated true
}
