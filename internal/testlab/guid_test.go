package testlab

import (
	"bytes"
	"testing"

	"github.com/lanconnect/lanconnect/internal/laps"
)

// guidBytes and utf16LE must agree with internal/laps, which testlab
// cannot import (see guidBytes).
func TestGUIDBytesMatchesLAPS(t *testing.T) {
	for _, a := range lapsAttrs {
		g, err := laps.ParseGUID(a.guid)
		if err != nil {
			t.Fatal(err)
		}
		if got := guidBytes(a.guid); !bytes.Equal(got, g[:]) {
			t.Fatalf("%s: %x, want %x", a.guid, got, g[:])
		}
	}
	if got, want := utf16LE(`"pä𝄞"`), laps.EncodeUTF16(`"pä𝄞"`); !bytes.Equal(got, want) {
		t.Fatalf("utf16LE %x, want %x", got, want)
	}
}
