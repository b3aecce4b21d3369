package winenc

import (
	"bytes"
	"testing"
	"time"
)

func TestUTF16LERoundTrip(t *testing.T) {
	for _, s := range []string{"", "Administrator", "pä𝄞", "a\x00b"} {
		b := EncodeUTF16LE(s)
		if got := DecodeUTF16LE(b); got != s {
			t.Fatalf("%q: round trip gave %q (%x)", s, got, b)
		}
	}
	if got := EncodeUTF16LE("A𝄞"); !bytes.Equal(got, []byte{0x41, 0, 0x34, 0xd8, 0x1e, 0xdd}) {
		t.Fatalf("A𝄞 encodes as %x", got)
	}
	if got := DecodeUTF16LE([]byte{0x41, 0, 0x42}); got != "A" {
		t.Fatalf("odd length: %q", got)
	}
}

func TestFromFiletime(t *testing.T) {
	if got := FromFiletime(116444736000000000); !got.Equal(time.Unix(0, 0)) {
		t.Fatalf("Unix epoch: %v", got)
	}
	for _, never := range []int64{0, -1, 0x7FFFFFFFFFFFFFFF} {
		if !FromFiletime(never).IsZero() {
			t.Fatalf("%d: not the zero time", never)
		}
	}
}
