package smbconn

import (
	"context"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"

	smb2 "github.com/oiweiwei/go-smb2.fork"
)

func challengeOf(nb, dns string) []byte {
	var pairs []av
	if nb != "" {
		pairs = append(pairs, av{avNbComputerName, utf16le(nb)}, av{avNbDomainName, utf16le("LAB")})
	}
	if dns != "" {
		pairs = append(pairs, av{avDNSComputerName, utf16le(dns)})
	}
	// The flags of a Windows server (unicode, request target, NTLM,
	// extended session security, target info, 128-bit, key exchange).
	return buildChallenge(0xE2898215, "LAB", pairs, nil)
}

func TestCheckIdentity(t *testing.T) {
	cases := []struct {
		expect, nb, dns string
		ok              bool
	}{
		{"HERON-PC", "HERON-PC", "", true},
		{"heron-pc", "HERON-PC", "", true},                             // case-insensitive
		{"heron-pc.corp.example", "HERON-PC", "", true},                // NetBIOS vs first DNS label
		{"heron-pc.corp.example.", "", "HERON-PC.corp.example", true},  // DNS vs DNS, trailing dot
		{"HERON-PC", "", "heron-pc.corp.example", true},                // NetBIOS vs server's DNS name
		{"averyveryverylongname.corp", "AVERYVERYVERYLO", "", true},    // NetBIOS keeps 15 characters
		{"ROGUE", "HERON-PC", "heron-pc.corp.example", false},          // another computer
		{"heron-pc.other.example", "", "heron-pc.corp.example", false}, // DNS names differ whole
		{"HERON", "HERON-PC", "heron-pc.corp.example", false},          // no prefix matching
		{"HERON-PC", "", "", false},                                    // no identity at all
		{"10.1.2.3", "ROGUE", "", true},                                // IP literal: no check
		{"fe80::1%eth0", "ROGUE", "", true},                            // IPv6 with zone: no check
		{"[2001:db8::1]", "ROGUE", "", true},                           // bracketed: no check
		{"", "ROGUE", "", true},                                        // nothing expected
		{"lcreal", "LCROGUE", "lcreal", true},                          // a bare DNS host name matches too
	}
	for _, c := range cases {
		ci, err := ParseChallenge(challengeOf(c.nb, c.dns))
		if err != nil {
			t.Fatal(err)
		}
		err = CheckIdentity(ci, c.expect)
		if (err == nil) != c.ok {
			t.Errorf("CheckIdentity(nb=%q dns=%q, %q) = %v, want ok=%v", c.nb, c.dns, c.expect, err, c.ok)
			continue
		}
		if err != nil {
			var ie *IdentityError
			if !errors.Is(err, ErrIdentityMismatch) || !errors.As(err, &ie) || ie.Expected != c.expect || ie.NetBIOSComputer != c.nb {
				t.Errorf("%q: error %#v does not carry the names", c.expect, err)
			}
		}
	}
}

// fakeNTLM stands in for go-smb2's NTLM initiator and counts how often it
// was asked for an AUTHENTICATE token.
type fakeNTLM struct {
	mu      sync.Mutex
	accepts int
}

func (f *fakeNTLM) OID() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 2, 10}
}
func (f *fakeNTLM) InitSecContext() ([]byte, error) {
	return []byte("NTLMSSP\x00\x01\x00\x00\x00"), nil
}
func (f *fakeNTLM) Sum(b []byte) []byte { return nil }
func (f *fakeNTLM) SessionKey() []byte  { return nil }
func (f *fakeNTLM) AcceptSecContext([]byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accepts++
	return []byte("NTLMSSP\x00\x03\x00\x00\x00AUTHENTICATE"), nil
}

func TestInitiatorRefusesBeforeAuthenticate(t *testing.T) {
	for _, c := range []struct {
		name, expect string
		challenge    []byte
		refuse       bool
	}{
		{"match", "LCREAL", challengeOf("LCREAL", ""), false},
		{"mismatch", "LCREAL", challengeOf("LCROGUE", "lcrogue.lab"), true},
		{"unreadable", "LCREAL", []byte("garbage"), true},
		{"no expectation", "", challengeOf("LCROGUE", ""), false},
		{"address literal", "10.0.0.5", challengeOf("LCROGUE", ""), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			inner := &fakeNTLM{}
			ci := &captureInitiator{Initiator: inner, expect: c.expect}
			tok, err := ci.AcceptSecContext(c.challenge)
			if c.refuse {
				if !errors.Is(err, ErrIdentityMismatch) || tok != nil || inner.accepts != 0 {
					t.Fatalf("token %q, err %v, inner asked %d times: want a refusal without an AUTHENTICATE", tok, err, inner.accepts)
				}
				if !errors.Is(ci.refusal(), ErrIdentityMismatch) {
					t.Fatalf("refusal() = %v", ci.refusal())
				}
				return
			}
			if err != nil || inner.accepts != 1 || ci.refusal() != nil {
				t.Fatalf("token %q, err %v, inner asked %d times: want the AUTHENTICATE", tok, err, inner.accepts)
			}
		})
	}
}

// TestDialRefusesWrongIdentity runs Dial against an in-memory server that
// answers NEGOTIATE and the first SESSION_SETUP with a CHALLENGE naming
// another computer, and counts the SESSION_SETUP requests it receives:
// exactly one (the NEGOTIATE token), never the AUTHENTICATE.
func TestDialRefusesWrongIdentity(t *testing.T) {
	srv := &fakeSetupServer{challenge: challengeOf("LCROGUE", "")}
	_, err := Dial(context.Background(), "lcreal", Auth{User: "u", Password: "p"}, Options{
		ExpectName: "LCREAL",
		Dialer:     dialFunc(func() net.Conn { return srv.conn(t) }),
	})
	var ie *IdentityError
	if !errors.Is(err, ErrIdentityMismatch) || !errors.As(err, &ie) || ie.NetBIOSComputer != "LCROGUE" {
		t.Fatalf("Dial: %v, want an *IdentityError naming LCROGUE", err)
	}
	var se *Error
	if !errors.As(err, &se) || !se.Info.HasChallenge || se.Info.Challenge.NetBIOSComputer != "LCROGUE" {
		t.Fatalf("the error does not carry the challenge: %#v", err)
	}
	<-srv.done
	if srv.setups != 1 {
		t.Fatalf("the server received %d SESSION_SETUP requests, want 1 (no AUTHENTICATE)", srv.setups)
	}
}

type dialFunc func() net.Conn

func (f dialFunc) DialContext(context.Context, string, string) (net.Conn, error) { return f(), nil }

// fakeSetupServer speaks just enough SMB2 for go-smb2's client to reach
// the CHALLENGE: a NEGOTIATE response (2.1, signing enabled), then a
// SESSION_SETUP response with STATUS_MORE_PROCESSING_REQUIRED carrying a
// SPNEGO negTokenResp around the challenge. It counts SESSION_SETUP
// requests until the client hangs up.
type fakeSetupServer struct {
	challenge []byte
	setups    int
	done      chan struct{}
}

func (s *fakeSetupServer) conn(t *testing.T) net.Conn {
	client, server := net.Pipe()
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		defer server.Close()
		for {
			var hdr [4]byte
			if _, err := readFull(server, hdr[:]); err != nil {
				return
			}
			n := int(binary.BigEndian.Uint32(hdr[:]) & 0xFFFFFF)
			msg := make([]byte, n)
			if _, err := readFull(server, msg); err != nil {
				return
			}
			if len(msg) < 64 {
				return
			}
			cmd := binary.LittleEndian.Uint16(msg[12:])
			msgID := binary.LittleEndian.Uint64(msg[24:])
			var resp []byte
			switch cmd {
			case 0: // NEGOTIATE
				resp = reply(negotiateResponse(0x0210, 1, 0), msgID)
			case 1: // SESSION_SETUP
				s.setups++
				resp = setupResponse(msgID, spnegoResp(s.challenge))
			default:
				return
			}
			out := binary.BigEndian.AppendUint32(nil, uint32(len(resp)))
			if _, err := server.Write(append(out, resp...)); err != nil {
				return
			}
		}
	}()
	return client
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// reply completes a response of watch_test.go's builders for go-smb2: it
// echoes the message ID, grants a credit and sets a session ID.
func reply(msg []byte, msgID uint64) []byte {
	binary.LittleEndian.PutUint16(msg[14:], 1)
	binary.LittleEndian.PutUint64(msg[24:], msgID)
	binary.LittleEndian.PutUint64(msg[40:], 0x1234)
	return msg
}

func setupResponse(msgID uint64, token []byte) []byte {
	msg := sessionSetupResponse(StatusMoreProcessingRequired, 0)
	binary.LittleEndian.PutUint16(msg[64+4:], 64+8)
	binary.LittleEndian.PutUint16(msg[64+6:], uint16(len(token)))
	return append(reply(msg, msgID), token...)
}

// spnegoResp wraps an NTLM token in a negTokenResp (accept-incomplete,
// mech NTLMSSP).
func spnegoResp(tok []byte) []byte {
	type negTokenResp struct {
		NegState      asn1.Enumerated       `asn1:"explicit,optional,tag:0"`
		SupportedMech asn1.ObjectIdentifier `asn1:"explicit,optional,tag:1"`
		ResponseToken []byte                `asn1:"explicit,optional,tag:2"`
	}
	inner, err := asn1.Marshal(negTokenResp{NegState: 1, SupportedMech: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 2, 10}, ResponseToken: tok})
	if err != nil {
		panic(err)
	}
	return append(asn1Header(0xa1, len(inner)), inner...)
}

func asn1Header(tag byte, n int) []byte {
	switch {
	case n < 0x80:
		return []byte{tag, byte(n)}
	case n < 0x100:
		return []byte{tag, 0x81, byte(n)}
	}
	return []byte{tag, 0x82, byte(n >> 8), byte(n)}
}

// TestInitiatorLocalDomain checks the domain that go-smb2's NTLM
// initiator puts in the AUTHENTICATE: with Auth.Local, the computer name
// from the CHALLENGE (COMPUTER\user); without it, go-smb2 replaces the
// empty domain with the CHALLENGE's NetBIOS domain (LAB in challengeOf),
// which a domain member checks against its domain, not its own accounts.
func TestInitiatorLocalDomain(t *testing.T) {
	for _, c := range []struct {
		local bool
		want  string
	}{{true, "LCMEMBER0"}, {false, "LAB"}} {
		n := &smb2.NTLMInitiator{User: "admin", Password: "pw"}
		ci := &captureInitiator{Initiator: n, local: c.local}
		neg, err := ci.InitSecContext()
		if err != nil {
			t.Fatal(err)
		}
		tok, err := ci.AcceptSecContext(challengeOf("LCMEMBER0", ""))
		if err != nil || len(tok) < 36 {
			t.Fatalf("AUTHENTICATE %x: %v", tok, err)
		}
		// DomainNameFields: length, maximum length, offset.
		l, off := int(binary.LittleEndian.Uint16(tok[28:30])), int(binary.LittleEndian.Uint32(tok[32:36]))
		if off+l > len(tok) {
			t.Fatalf("domain field %d+%d outside %d bytes", off, l, len(tok))
		}
		if got, err := decodeUTF16(tok[off : off+l]); err != nil || got != c.want {
			t.Fatalf("local %v: domain %q, want %q", c.local, got, c.want)
		}
		// The NEGOTIATE that went out does not depend on the domain.
		if again, _ := (&smb2.NTLMInitiator{Domain: "LCMEMBER0"}).InitSecContext(); string(again) != string(neg) {
			t.Fatalf("NEGOTIATE differs with a domain: %x vs %x", again, neg)
		}
	}
}
