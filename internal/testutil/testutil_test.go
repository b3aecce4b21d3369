package testutil

import (
	"net/netip"
	"sync"
	"testing"
)

func TestLoopbackIPUniqueAndLoopback(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		s := LoopbackIP()
		a, err := netip.ParseAddr(s)
		if err != nil || !a.IsLoopback() {
			t.Fatalf("LoopbackIP() = %q, not a loopback address", s)
		}
		if seen[s] {
			t.Fatalf("LoopbackIP() returned %s twice", s)
		}
		seen[s] = true
	}
}

func TestLockedBufferConcurrent(t *testing.T) {
	var b LockedBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Fatalf("%d bytes written, want 800", n)
	}
}
