package netbios

import (
	"net"
	"testing"
)

func TestAddSubnets(t *testing.T) {
	ipnet := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	var tg Targets
	capped := addSubnets(&tg, "eth9", []net.Addr{
		ipnet("192.168.1.20/24"),
		ipnet("10.20.30.40/16"),
		ipnet("172.16.0.1/32"),
		ipnet("fe80::1/64"),
		&net.IPAddr{IP: net.IPv4(1, 2, 3, 4)},
	}, 22, nil)
	if len(tg.Ranges) != 2 || tg.Ranges[0].String() != "192.168.1.1-192.168.1.254" || tg.Ranges[1].String() != "10.20.28.1-10.20.31.254" {
		t.Fatalf("ranges %v", tg.Ranges)
	}
	if len(tg.Broadcast) != 2 || tg.Broadcast[0].String() != "192.168.1.255" || tg.Broadcast[1].String() != "10.20.255.255" {
		t.Fatalf("broadcast %v", tg.Broadcast)
	}
	// Broadcast answers are accepted from the whole subnets, not only the
	// swept /22.
	if len(tg.Subnets) != 2 || tg.Subnets[0].String() != "192.168.1.0/24" || tg.Subnets[1].String() != "10.20.0.0/16" {
		t.Fatalf("subnets %v", tg.Subnets)
	}
	if len(capped) != 1 || capped[0].Interface != "eth9" || capped[0].Subnet.String() != "10.20.0.0/16" || capped[0].Swept.String() != "10.20.28.0/22" {
		t.Fatalf("capped %+v", capped)
	}
}
