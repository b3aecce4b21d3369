package netbios

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"time"
)

// Neighbour states (linux/neighbour.h).
const (
	nudIncomplete = 0x01 // ARP asked, no answer yet
	nudFailed     = 0x20 // ARP gave up
	ndaDst        = 1    // NDA_DST: the neighbour's address
	sizeofNdMsg   = 12   // struct ndmsg
)

// neighbours tells which on-link addresses have no link-layer address:
// ARP has asked and no answer came (INCOMPLETE), or ARP gave up (FAILED).
// A packet to such an address waits in the kernel until ARP resolves it,
// so asking it again adds nothing. It reads the kernel's neighbour table
// over netlink, at most once per neighbourRefresh. Its zero value is ready;
// it is not safe for concurrent use (the scan holds its mutex).
type neighbours struct {
	at      time.Time
	pending map[netip.Addr]bool
	broken  bool // netlink failed once: never again
}

const neighbourRefresh = 50 * time.Millisecond

// unresolved reports whether ARP has not resolved a (as of at most
// neighbourRefresh ago). It reports false when it cannot tell.
func (n *neighbours) unresolved(a netip.Addr, now time.Time) bool {
	if n.broken {
		return false
	}
	if n.pending == nil || now.Sub(n.at) >= neighbourRefresh {
		m, err := readNeighbours()
		if err != nil {
			n.broken = true
			return false
		}
		n.pending, n.at = m, now
	}
	return n.pending[a]
}

// readNeighbours dumps the IPv4 neighbour table and returns the addresses
// in state INCOMPLETE or FAILED.
func readNeighbours() (map[netip.Addr]bool, error) {
	b, err := syscall.NetlinkRIB(syscall.RTM_GETNEIGH, syscall.AF_INET)
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]bool)
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWNEIGH || len(m.Data) < sizeofNdMsg {
			continue
		}
		state := binary.NativeEndian.Uint16(m.Data[8:10])
		if state&(nudIncomplete|nudFailed) == 0 {
			continue
		}
		// Route attributes: length, type, value, each 4-byte aligned.
		for attrs := m.Data[sizeofNdMsg:]; len(attrs) >= 4; {
			l := int(binary.NativeEndian.Uint16(attrs[0:2]))
			if l < 4 || l > len(attrs) {
				break
			}
			if binary.NativeEndian.Uint16(attrs[2:4]) == ndaDst && l == 8 {
				out[netip.AddrFrom4([4]byte(attrs[4:8]))] = true
			}
			attrs = attrs[min(len(attrs), (l+3)&^3):]
		}
	}
	return out, nil
}
