package rpcauth

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/oiweiwei/go-msrpc/ssp/credential"
	"github.com/oiweiwei/go-msrpc/ssp/gssapi"
	"github.com/oiweiwei/go-msrpc/ssp/name"
	"github.com/oiweiwei/go-msrpc/ssp/ntlm"
)

// testDB is a one-account NTLM credential database for the in-memory
// acceptor.
type testDB struct{ user, password string }

func (testDB) Add(credential.Credential) {}

func (d testDB) Lookup(_ context.Context, c credential.Credential) (credential.Credential, bool) {
	if c == nil || c.UserName() != d.user {
		return nil, false
	}
	return credential.NewFromPassword(d.user, d.password, credential.Domain(c.DomainName())), true
}

// pair is an NTLM client and server security context established against
// each other in memory, with the same options dcerpc uses at PKT_PRIVACY.
type pair struct {
	client, server         context.Context
	clientOpts, serverOpts []gssapi.Option
}

const sealCaps = gssapi.Confidentiality | gssapi.Integrity | gssapi.ReplayDetection | gssapi.Sequencing

func newPair(t *testing.T, clientMech, serverMech gssapi.MechanismFactory) *pair {
	t.Helper()
	const user, pass = "tester", "not-a-real-secret-1"
	p := &pair{
		client: gssapi.NewSecurityContext(context.Background(),
			gssapi.WithCredential(credential.NewFromPassword(user, pass, credential.Domain("WG"))),
			gssapi.WithMechanismFactory(clientMech)),
		server: gssapi.NewSecurityContext(context.Background(), gssapi.WithMechanismFactory(serverMech)),
		clientOpts: []gssapi.Option{
			gssapi.WithMechanismType(ntlm.MechanismType),
			gssapi.WithRequest(sealCaps),
		},
		serverOpts: []gssapi.Option{
			gssapi.WithMechanismType(ntlm.MechanismType),
			gssapi.WithRequest(sealCaps),
			gssapi.WithCredentialDatabase(gssapi.NewCredentialDatabase(credential.Database(testDB{user, pass}))),
			gssapi.WithServerNames(name.NetBIOS("SRV", name.Domain("WG")), name.DNS("srv")),
		},
	}
	neg, err := gssapi.InitSecurityContext(p.client, &gssapi.Token{}, p.clientOpts...)
	if err != nil {
		t.Fatalf("negotiate: %v", err)
	}
	chal, err := gssapi.AcceptSecurityContext(p.server, neg, p.serverOpts...)
	if err != nil {
		t.Fatalf("challenge: %v", err)
	}
	auth, err := gssapi.InitSecurityContext(p.client, chal, p.clientOpts...)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if _, err := gssapi.AcceptSecurityContext(p.server, auth, p.serverOpts...); err != nil {
		t.Fatalf("accept authenticate: %v", err)
	}
	if !gssapi.IsComplete(p.client) || !gssapi.IsComplete(p.server) {
		t.Fatal("contexts not complete")
	}
	return p
}

// pdu builds the three payloads dcerpc hands to WrapEx/UnwrapEx for one
// sealed fragment: header, stub (sealed) and security trailer.
func pdu(hdr, stub, trailer []byte) *gssapi.MessageTokenEx {
	return &gssapi.MessageTokenEx{Payloads: []*gssapi.PayloadEx{
		{Payload: hdr},
		{Payload: stub, Capabilities: gssapi.Integrity | gssapi.Confidentiality},
		{Payload: trailer},
	}}
}

// seal wraps one fragment on ctx (as the sending side) and returns the
// wire form: the three payloads (stub encrypted) and the signature.
func seal(t *testing.T, ctx context.Context, stub []byte) (hdr, sealed, trailer, sig []byte) {
	t.Helper()
	hdr = []byte{5, 0, 2, 3, 0x10, 0, 0, 0, 0x40, 0, 0x10, 0, 7, 0, 0, 0}
	trailer = []byte{0x0a, 0x06, 0, 0, 1, 0, 0, 0}
	sealed = append([]byte(nil), stub...)
	out, err := gssapi.WrapEx(ctx, pdu(hdr, sealed, trailer))
	if err != nil {
		t.Fatalf("wrap: %v", err)
	}
	return hdr, sealed, trailer, out.Signature
}

// unwrap does what dcerpc.Security.Unwrap does at PKT_PRIVACY: it calls
// gssapi.UnwrapEx with the received signature and uses only the error.
func unwrap(ctx context.Context, hdr, sealed, trailer, sig []byte) ([]byte, error) {
	tok := pdu(append([]byte(nil), hdr...), append([]byte(nil), sealed...), append([]byte(nil), trailer...))
	tok.Signature = append([]byte(nil), sig...)
	_, err := gssapi.UnwrapEx(ctx, tok)
	return tok.Payloads[1].Payload, err
}

var message = []byte("SERVICE_RUNNING: pid 4242, the applet is up and waiting for its console")

// TestUnchangedGoMSRPCAcceptsTamperedSeal documents the hazard: go-msrpc's
// own NTLM accepts a sealed response with a flipped bit and hands back
// corrupted plaintext without an error. If this test ever fails, go-msrpc
// has started verifying, and the wrapper is merely redundant.
func TestUnchangedGoMSRPCAcceptsTamperedSeal(t *testing.T) {
	p := newPair(t, ntlm.Mechanism{}, ntlm.Mechanism{})
	hdr, sealed, trailer, sig := seal(t, p.server, message)
	sealed[5] ^= 0x01
	got, err := unwrap(p.client, hdr, sealed, trailer, sig)
	if err != nil {
		t.Fatalf("go-msrpc rejected the tampered PDU (%v): the hazard is fixed upstream", err)
	}
	if bytes.Equal(got, message) {
		t.Fatal("tampering did not change the plaintext")
	}
	t.Logf("unchanged go-msrpc accepted corrupted plaintext %q", got[:12])
}

func TestVerifyingNTLMRefusesTamperedSeal(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(hdr, sealed, trailer, sig []byte)
	}{
		{"stub bit", func(_, s, _, _ []byte) { s[5] ^= 0x01 }},
		{"last stub bit", func(_, s, _, _ []byte) { s[len(s)-1] ^= 0x80 }},
		{"header bit", func(h, _, _, _ []byte) { h[12] ^= 0x01 }},
		{"trailer bit", func(_, _, tr, _ []byte) { tr[4] ^= 0x01 }},
		{"checksum bit", func(_, _, _, sig []byte) { sig[6] ^= 0x01 }},
		{"sequence number", func(_, _, _, sig []byte) { sig[12] ^= 0x01 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, VerifyingNTLM{}, ntlm.Mechanism{})
			hdr, sealed, trailer, sig := seal(t, p.server, message)
			tc.tamper(hdr, sealed, trailer, sig)
			_, err := unwrap(p.client, hdr, sealed, trailer, sig)
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("err = %v, want ErrIntegrity", err)
			}
			// The context is now untrustworthy: a genuine next PDU fails too.
			hdr, sealed, trailer, sig = seal(t, p.server, message)
			if _, err := unwrap(p.client, hdr, sealed, trailer, sig); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("after a failure, err = %v, want ErrIntegrity", err)
			}
		})
	}
}

func TestVerifyingNTLMPassesGenuineFragmentsInOrder(t *testing.T) {
	p := newPair(t, VerifyingNTLM{}, ntlm.Mechanism{})
	for i := range 50 {
		msg := bytes.Repeat([]byte{byte(i)}, 1+i*37)
		hdr, sealed, trailer, sig := seal(t, p.server, msg)
		if bytes.Equal(sealed, msg) {
			t.Fatalf("fragment %d was not encrypted", i)
		}
		got, err := unwrap(p.client, hdr, sealed, trailer, sig)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("fragment %d: plaintext differs", i)
		}
	}
}

// TestVerifyingNTLMRefusesReplay shows the sequence discipline: a genuine
// fragment delivered twice (or out of order) fails.
func TestVerifyingNTLMRefusesReplay(t *testing.T) {
	p := newPair(t, VerifyingNTLM{}, ntlm.Mechanism{})
	h, s, tr, sig := seal(t, p.server, message)
	if _, err := unwrap(p.client, h, s, tr, sig); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	if _, err := unwrap(p.client, h, s, tr, sig); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("replayed fragment: err = %v, want ErrIntegrity", err)
	}

	q := newPair(t, VerifyingNTLM{}, ntlm.Mechanism{})
	_, _, _, _ = seal(t, q.server, message) // fragment 0, never delivered
	h, s, tr, sig = seal(t, q.server, message)
	if _, err := unwrap(q.client, h, s, tr, sig); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("fragment 1 before 0: err = %v, want ErrIntegrity", err)
	}
}

// TestVerifyingNTLMServerSide checks the acceptor direction too: a server
// (winemu, or a future one) that uses VerifyingNTLM refuses a tampered
// sealed request.
func TestVerifyingNTLMServerSide(t *testing.T) {
	p := newPair(t, ntlm.Mechanism{}, VerifyingNTLM{})
	hdr, sealed, trailer, sig := seal(t, p.client, message)
	if got, err := unwrap(p.server, hdr, sealed, trailer, sig); err != nil || !bytes.Equal(got, message) {
		t.Fatalf("genuine request: %q, %v", got, err)
	}
	hdr, sealed, trailer, sig = seal(t, p.client, message)
	sealed[0] ^= 0x04
	if _, err := unwrap(p.server, hdr, sealed, trailer, sig); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("tampered request: err = %v, want ErrIntegrity", err)
	}
}

// TestVerifyingNTLMRoundTripBothWays runs both sides wrapped, with
// requests and responses interleaved, so each direction's keys and
// sequence numbers are exercised independently.
func TestVerifyingNTLMRoundTripBothWays(t *testing.T) {
	p := newPair(t, VerifyingNTLM{}, VerifyingNTLM{})
	for i := range 10 {
		req := append([]byte("request "), byte('0'+i))
		hdr, sealed, trailer, sig := seal(t, p.client, req)
		if got, err := unwrap(p.server, hdr, sealed, trailer, sig); err != nil || !bytes.Equal(got, req) {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
		resp := append([]byte("response "), byte('0'+i))
		hdr, sealed, trailer, sig = seal(t, p.server, resp)
		if got, err := unwrap(p.client, hdr, sealed, trailer, sig); err != nil || !bytes.Equal(got, resp) {
			t.Fatalf("response %d: %q, %v", i, got, err)
		}
	}
}
