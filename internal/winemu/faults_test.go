package winemu_test

import (
	"errors"
	"testing"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

func TestFaultsSet(t *testing.T) {
	var f winemu.Faults
	if f.String() != "none" {
		t.Fatalf("zero = %q", f.String())
	}
	if err := f.Set("deny, hang,tamper=-1:8:7:3"); err != nil {
		t.Fatal(err)
	}
	if !f.Deny() || !f.Hang() || f.Refuse() || f.ServiceDidNotStart() {
		t.Fatalf("modes = %s", f.String())
	}
	if got := f.String(); got != "deny,hang,tamper=-1:8:7:3" {
		t.Fatalf("String = %q", got)
	}
	if err := f.Set("hang=off,refuse=on,did-not-start"); err != nil {
		t.Fatal(err)
	}
	if got := f.String(); got != "deny,refuse,did-not-start,tamper=-1:8:7:3" {
		t.Fatalf("String = %q", got)
	}
	for _, bad := range []string{"explode", "deny=maybe", "tamper=1:2:3", "tamper=1:2:8:1", "tamper=a:b:c:d", "tamper=1:2:3:4:loud", "hang,bogus"} {
		if err := f.Set(bad); !errors.Is(err, winemu.ErrBadFault) {
			t.Errorf("Set(%q) = %v", bad, err)
		}
	}
	// A failed Set changes nothing (the valid "hang" before "bogus" included).
	if got := f.String(); got != "deny,refuse,did-not-start,tamper=-1:8:7:3" {
		t.Fatalf("after bad sets = %q", got)
	}
	if err := f.Set("none"); err != nil || f.String() != "none" {
		t.Fatalf("none: %v %q", err, f.String())
	}
}
