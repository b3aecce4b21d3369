package adauth

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"testing"
)

func TestSPNEGOInitNTLM(t *testing.T) {
	ntlm := []byte("NTLMSSP\x00\x01\x00\x00\x00payload")
	tok, err := spnegoInitNTLM(ntlm)
	if err != nil {
		t.Fatal(err)
	}
	// Hand-checked framing: [APPLICATION 0] { OID 1.3.6.1.5.5.2,
	// [0] { SEQUENCE { [0] { SEQUENCE { OID 1.3.6.1.4.1.311.2.2.10 } },
	// [2] { OCTET STRING ntlm } } } }.
	want, _ := hex.DecodeString("60" + "33" +
		"06062b0601050502" + // SPNEGO OID
		"a0" + "29" + "30" + "27" +
		"a0" + "0e" + "30" + "0c" + "060a2b06010401823702020a" + // mechTypes: NTLMSSP
		"a2" + "15" + "04" + "13")
	want = append(want, ntlm...)
	if !bytes.Equal(tok, want) {
		t.Fatalf("token\n got %x\nwant %x", tok, want)
	}
	back, err := parseNegTokenInit(tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.MechTypes) != 1 || !back.MechTypes[0].Equal(oidNTLMSSP) || !bytes.Equal(back.MechToken, ntlm) {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestSPNEGORespToken(t *testing.T) {
	auth := []byte("NTLMSSP\x00\x03\x00\x00\x00auth")
	tok, err := spnegoRespToken(auth)
	if err != nil {
		t.Fatal(err)
	}
	// [1] { SEQUENCE { [2] { OCTET STRING auth } } }, no negState.
	want, _ := hex.DecodeString("a1" + "16" + "30" + "14" + "a2" + "12" + "04" + "10")
	want = append(want, auth...)
	if !bytes.Equal(tok, want) {
		t.Fatalf("token\n got %x\nwant %x", tok, want)
	}
	r, err := parseNegTokenResp(tok)
	if err != nil {
		t.Fatal(err)
	}
	if r.NegState != -1 || !bytes.Equal(r.ResponseToken, auth) || r.SupportedMech != nil {
		t.Fatalf("round trip: %+v", r)
	}
}

func TestParseNegTokenResp(t *testing.T) {
	// A server's first reply: accept-incomplete, NTLMSSP, a challenge.
	challenge := []byte("NTLMSSP\x00\x02\x00\x00\x00chal")
	inner, _ := asn1.Marshal(struct {
		State asn1.Enumerated       `asn1:"explicit,tag:0"`
		Mech  asn1.ObjectIdentifier `asn1:"explicit,tag:1"`
		Tok   []byte                `asn1:"explicit,tag:2"`
	}{negAcceptIncomplete, oidNTLMSSP, challenge})
	tok, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: inner})
	r, err := parseNegTokenResp(tok)
	if err != nil {
		t.Fatal(err)
	}
	if r.NegState != negAcceptIncomplete || !r.SupportedMech.Equal(oidNTLMSSP) || !bytes.Equal(r.ResponseToken, challenge) {
		t.Fatalf("parsed %+v", r)
	}

	// accept-completed alone.
	inner, _ = asn1.Marshal(struct {
		State asn1.Enumerated `asn1:"explicit,tag:0"`
	}{negAcceptCompleted})
	tok, _ = asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: inner})
	if r, err = parseNegTokenResp(tok); err != nil || r.NegState != negAcceptCompleted {
		t.Fatalf("accept-completed: %+v, %v", r, err)
	}

	for name, bad := range map[string][]byte{
		"empty":     nil,
		"wrong tag": {0xa0, 0x02, 0x30, 0x00},
		"truncated": tok[:len(tok)-1],
		"trailing":  append(append([]byte(nil), tok...), 0),
		"garbage":   []byte("NTLMSSP\x00"),
	} {
		if _, err := parseNegTokenResp(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParseNegTokenResp(f *testing.F) {
	tok, _ := spnegoRespToken([]byte("x"))
	f.Add(tok)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseNegTokenResp(b) // must not panic
	})
}
