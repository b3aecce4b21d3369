package krb

import (
	"errors"
	"github.com/jcmturner/gofork/encoding/asn1"
	"testing"

	smb2 "github.com/oiweiwei/go-smb2.fork"
	"github.com/oiweiwei/gokrb5.fork/v9/spnego"
)

type recordingInitiator struct {
	smb2.Initiator
	accepted int
}

func (r *recordingInitiator) AcceptSecContext([]byte) ([]byte, error) {
	r.accepted++
	return []byte{1}, nil
}

// TestMutualInitiatorRequiresAPREP: a server that says "accept-completed"
// without an AP-REP (a host that cannot decrypt the ticket but claims
// success) is refused before go-msrpc's mechanism would derive a key from
// the ticket alone.
func TestMutualInitiatorRequiresAPREP(t *testing.T) {
	inner := &recordingInitiator{}
	m := &mutualInitiator{Initiator: inner, spn: "cifs/ws01.example.test"}
	resp := spnego.NegTokenResp{NegState: asn1.Enumerated(0), SupportedMech: asn1.ObjectIdentifier{1, 2, 840, 48018, 1, 2, 2}}
	b, err := resp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string][]byte{"no AP-REP": b, "empty": nil, "garbage": {0xa1, 0x03, 0x30, 0x01}} {
		if _, err := m.AcceptSecContext(tok); !errors.Is(err, ErrMutualAuth) || !errors.Is(m.Failure(), ErrMutualAuth) {
			t.Errorf("%s: %v, want ErrMutualAuth", name, err)
		}
	}
	if inner.accepted != 0 {
		t.Errorf("the inner mechanism saw %d answers", inner.accepted)
	}
	resp.ResponseToken = []byte{0x6f, 0x00}
	b, _ = resp.Marshal()
	if _, err := m.AcceptSecContext(b); err != nil || inner.accepted != 1 {
		t.Errorf("with a token: %v, inner %d", err, inner.accepted)
	}
}

func TestUnrotate(t *testing.T) {
	hdr := []byte{0x05, 0x04, 0x01, 0xff, 0, 12, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1}
	data := []byte("payload+checksum")
	rot := append(append([]byte{}, data[len(data)-3:]...), data[:len(data)-3]...) // rotated right by 3
	got, err := unrotate(append(append([]byte{}, hdr...), rot...))
	if err != nil || string(got[16:]) != string(data) || got[6] != 0 || got[7] != 0 {
		t.Fatalf("unrotate: %q %v", got, err)
	}
	if _, err := unrotate(hdr[:10]); err == nil {
		t.Fatal("short token accepted")
	}
}
