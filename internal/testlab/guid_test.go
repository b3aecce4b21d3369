package testlab

import (
	"bytes"
	"testing"

	"github.com/lanconnect/lanconnect/internal/laps"
)

// guidBytes must agree with internal/laps, which testlab cannot import
// (see guidBytes). (UTF-16LE, which both once wrote, is internal/winenc's
// now, with its own test.)
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
}
