package testutil

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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

func TestConsts(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x.go")
	src := "package x\ntype Code string\ntype N uint32\nconst (\n\tA Code = \"a-b\"\n\tB N = 0x1F\n\tC = 3\n\tD, E N = 7, 8\n)\n"
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := Consts(t, "Code", f); len(got) != 1 || got[0] != (Const{Name: "A", Str: "a-b"}) {
		t.Errorf("Code: %+v", got)
	}
	want := []Const{{Name: "B", Num: 31}, {Name: "D", Num: 7}, {Name: "E", Num: 8}}
	if got := Consts(t, "N", f); !slices.Equal(got, want) {
		t.Errorf("N: %+v", got)
	}
}
