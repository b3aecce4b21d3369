package winemu

import (
	"testing"
	"time"
)

func TestFaultsDelay(t *testing.T) {
	var f Faults
	if _, _, ok := f.takeDelay("svcctl", 12); ok {
		t.Fatal("zero Faults delayed a call")
	}
	f.SetDelay(DelaySpec{Count: 1, Interface: "svcctl", OpNum: 12, Delay: time.Minute})
	if _, _, ok := f.takeDelay("winreg", 12); ok {
		t.Fatal("other interface delayed")
	}
	if _, _, ok := f.takeDelay("svcctl", 13); ok {
		t.Fatal("other operation delayed")
	}
	d, release, ok := f.takeDelay("svcctl", 12)
	if !ok || d != time.Minute {
		t.Fatalf("%v %v", d, ok)
	}
	if _, _, ok := f.takeDelay("svcctl", 12); ok {
		t.Fatal("count not consumed")
	}
	select {
	case <-release:
		t.Fatal("released early")
	default:
	}
	if err := f.Set("none"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-release:
	default:
		t.Fatal("none did not release the held response")
	}
}
