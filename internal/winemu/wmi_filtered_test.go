package winemu_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

func TestFilteredPortDropsConnects(t *testing.T) {
	p, err := winemu.ListenFiltered(netip.MustParseAddr(testutil.LoopbackIP()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	c, err := net.DialTimeout("tcp", p.Addr.String(), 500*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatal("connect to the filtered port succeeded")
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("connect error %v, want a timeout", err)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Fatalf("connect failed after %v, not at the deadline", took)
	}
}

func TestFilteredPortOpensFast(t *testing.T) {
	start := time.Now()
	p, err := winemu.ListenFiltered(netip.MustParseAddr(testutil.LoopbackIP()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("ListenFiltered took %v", took)
	}
}
