package adauth

import (
	"encoding/asn1"
	"errors"
	"fmt"
)

// SPNEGO (RFC 4178) framing for NTLM tokens, as used by the SASL
// GSS-SPNEGO mechanism of Active Directory and Samba.

var (
	oidSPNEGO  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 2}
	oidNTLMSSP = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 2, 10}
)

// negState values of a NegTokenResp (RFC 4178 section 4.2.2).
const (
	negAcceptCompleted  = 0
	negAcceptIncomplete = 1
	negReject           = 2
	negRequestMIC       = 3
)

// negTokenInit is RFC 4178's NegTokenInit without the fields we never send
// (reqFlags, mechListMIC).
type negTokenInit struct {
	MechTypes []asn1.ObjectIdentifier `asn1:"explicit,tag:0"`
	MechToken []byte                  `asn1:"explicit,optional,tag:2"`
}

// negTokenResp is RFC 4178's NegTokenResp. NegState is -1 when absent.
type negTokenResp struct {
	NegState      asn1.Enumerated       `asn1:"explicit,optional,default:-1,tag:0"`
	SupportedMech asn1.ObjectIdentifier `asn1:"explicit,optional,tag:1"`
	ResponseToken []byte                `asn1:"explicit,optional,tag:2"`
	MechListMIC   []byte                `asn1:"explicit,optional,tag:3"`
}

// spnegoInitNTLM wraps an NTLM NEGOTIATE message in the initial SPNEGO
// token: the GSS-API InitialContextToken framing ([APPLICATION 0], the
// SPNEGO OID) around a NegTokenInit ([0]) that offers NTLMSSP only and
// carries the message as its optimistic mechToken.
func spnegoInitNTLM(ntlmNegotiate []byte) ([]byte, error) {
	inner, err := asn1.Marshal(negTokenInit{
		MechTypes: []asn1.ObjectIdentifier{oidNTLMSSP},
		MechToken: ntlmNegotiate,
	})
	if err != nil {
		return nil, err
	}
	choice, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner})
	if err != nil {
		return nil, err
	}
	oid, err := asn1.Marshal(oidSPNEGO)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassApplication, Tag: 0, IsCompound: true, Bytes: append(oid, choice...)})
}

// spnegoRespToken wraps an NTLM AUTHENTICATE message in a NegTokenResp
// ([1]) with only its responseToken set.
func spnegoRespToken(ntlmAuthenticate []byte) ([]byte, error) {
	return spnegoResp(negTokenResp{NegState: -1, ResponseToken: ntlmAuthenticate})
}

// spnegoResp encodes a NegTokenResp ([1]); a NegState of -1 is left out.
func spnegoResp(r negTokenResp) ([]byte, error) {
	inner, err := asn1.Marshal(r)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: inner})
}

var errSPNEGO = errors.New("malformed SPNEGO token")

// parseNegTokenResp decodes the server's NegTokenResp ([1]).
func parseNegTokenResp(b []byte) (negTokenResp, error) {
	var r negTokenResp
	var outer asn1.RawValue
	rest, err := asn1.Unmarshal(b, &outer)
	if err != nil {
		return r, fmt.Errorf("%w: %v", errSPNEGO, err)
	}
	if len(rest) != 0 || outer.Class != asn1.ClassContextSpecific || outer.Tag != 1 || !outer.IsCompound {
		return r, fmt.Errorf("%w: not a NegTokenResp (class %d, tag %d)", errSPNEGO, outer.Class, outer.Tag)
	}
	rest, err = asn1.Unmarshal(outer.Bytes, &r)
	if err != nil {
		return r, fmt.Errorf("%w: %v", errSPNEGO, err)
	}
	if len(rest) != 0 {
		return r, fmt.Errorf("%w: trailing data", errSPNEGO)
	}
	return r, nil
}

// parseNegTokenInit decodes an initial SPNEGO token as spnegoInitNTLM
// writes it. It serves the tests (and a server, should one be needed).
func parseNegTokenInit(b []byte) (negTokenInit, error) {
	var t negTokenInit
	var app asn1.RawValue
	rest, err := asn1.Unmarshal(b, &app)
	if err != nil || len(rest) != 0 || app.Class != asn1.ClassApplication || app.Tag != 0 {
		return t, fmt.Errorf("%w: not an InitialContextToken", errSPNEGO)
	}
	var oid asn1.ObjectIdentifier
	rest, err = asn1.Unmarshal(app.Bytes, &oid)
	if err != nil || !oid.Equal(oidSPNEGO) {
		return t, fmt.Errorf("%w: mechanism is not SPNEGO", errSPNEGO)
	}
	var choice asn1.RawValue
	if rest, err = asn1.Unmarshal(rest, &choice); err != nil || len(rest) != 0 || choice.Class != asn1.ClassContextSpecific || choice.Tag != 0 {
		return t, fmt.Errorf("%w: not a NegTokenInit", errSPNEGO)
	}
	if rest, err = asn1.Unmarshal(choice.Bytes, &t); err != nil || len(rest) != 0 {
		return t, fmt.Errorf("%w: bad NegTokenInit", errSPNEGO)
	}
	return t, nil
}
