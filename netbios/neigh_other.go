//go:build !linux

package netbios

import (
	"net/netip"
	"time"
)

// neighbours would tell which addresses ARP has not resolved; outside
// Linux it cannot tell, and every retry is sent.
type neighbours struct{}

func (n *neighbours) unresolved(netip.Addr, time.Time) bool { return false }
