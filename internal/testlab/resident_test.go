package testlab

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestResidentRPC: a ResidentRPC target has samba-dcerpcd running before
// any client, serves the RPC pipes through it, leaves TCP 135 to the test,
// and gets it back after StopSMB and StartSMB; a standard target next to
// it has none until a client opens a pipe.
func TestResidentRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	l := New(t, Options{Targets: []TargetSpec{{ResidentRPC: true}, {}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, std := l.Targets[0], l.Targets[1]
	if !res.ResidentRPC || std.ResidentRPC {
		t.Fatalf("ResidentRPC reported as %v and %v", res.ResidentRPC, std.ResidentRPC)
	}
	dcerpcd := func(tg *Target) int {
		n := 0
		for _, pid := range netnsPids(ctx, tg.Name) {
			if procComm(pid) == "samba-dcerpcd" {
				n++
			}
		}
		return n
	}
	if n, m := dcerpcd(res), dcerpcd(std); n != 1 || m != 0 {
		t.Fatalf("before any client: samba-dcerpcd %d on the resident target (want 1), %d on the standard one (want 0)", n, m)
	}
	ask := func(what string) {
		t.Helper()
		who, err := whoami(ctx, res.Addr, res.Admin)
		if err != nil || !strings.Contains(who, "Account Name: "+res.Admin.User+",") {
			t.Fatalf("%s: lsarpc getusername on the resident target: %v: %s", what, err, who)
		}
	}
	ask("first client")
	if c, err := net.DialTimeout("tcp", netip.AddrPortFrom(res.Addr, 135).String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the resident target listens on TCP 135 (the endpoint mapper should not run)")
	}
	if err := res.StopSMB(); err != nil {
		t.Fatal(err)
	}
	if n := dcerpcd(res); n != 0 {
		t.Fatalf("after StopSMB: %d samba-dcerpcd left", n)
	}
	if err := res.StartSMB(); err != nil {
		t.Fatal(err)
	}
	if n := dcerpcd(res); n != 1 {
		t.Fatalf("after StartSMB: %d samba-dcerpcd (want 1)", n)
	}
	ask("after StartSMB")
}
