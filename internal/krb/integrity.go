package krb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/gssapi"
	"github.com/oiweiwei/go-msrpc/ssp/krb5"
)

// ErrIntegrity is matched (errors.Is) by the error of an RPC call whose
// Kerberos-protected response, or any later PDU on the same security
// context, failed its check: the data was altered on the way, the
// verifier is missing or malformed, or the peer does not hold the session
// key. It is adauth.ErrIntegrity (defined here because adauth imports this
// package), the error of NTLM's check in internal/rpcauth too.
var ErrIntegrity = errors.New("rpcauth: response failed the integrity check")

// verifyingKRB5 is a go-msrpc mechanism factory for Kerberos: go-msrpc's
// own mechanism, whose checks of received PDUs (UnwrapEx at PKT_PRIVACY,
// VerifySignatureEx at PKT_INTEGRITY) fail with ErrIntegrity instead of a
// bare GSS-API error, never panic, and stay failed for the rest of the
// security context. Measured against winemu through a tampering proxy:
// go-msrpc's Kerberos does refuse a flipped bit, but with an error no
// caller could tell from a network failure, and a response whose
// verifier was stripped (auth_length 0) made its AES unwrap panic in the
// caller's goroutine, which killed the console.
//
// It holds no state; each security context gets its own mechanism from
// New. Everything else (the AP exchange, sealing and signing of
// requests) is go-msrpc's.
type verifyingKRB5 struct{}

var (
	_ gssapi.MechanismFactory = verifyingKRB5{}
	_ gssapi.MechanismEx      = (*krbVerifier)(nil)
)

// Type returns the Kerberos OID, so that the factory takes the place of
// go-msrpc's Kerberos in a security context's own mechanism store, with
// its configuration.
func (verifyingKRB5) Type() gssapi.OID { return ssp.KRB5.Type() }

// DefaultConfig returns go-msrpc's default Kerberos configuration.
func (verifyingKRB5) DefaultConfig(ctx context.Context) (gssapi.MechanismConfig, error) {
	return ssp.KRB5.DefaultConfig(ctx)
}

// New returns a fresh checking mechanism around a fresh go-msrpc one.
func (verifyingKRB5) New(ctx context.Context) (gssapi.Mechanism, error) {
	m, err := ssp.KRB5.New(ctx)
	if err != nil {
		return nil, err
	}
	km, ok := m.(*krb5.Mechanism)
	if !ok {
		return nil, fmt.Errorf("krb: unexpected Kerberos mechanism type %T", m)
	}
	return &krbVerifier{Mechanism: km}, nil
}

// krbVerifier wraps go-msrpc's Kerberos mechanism; see verifyingKRB5.
type krbVerifier struct {
	*krb5.Mechanism

	mu     sync.Mutex
	broken error // sticky: once a PDU fails, all later ones fail
	seq    uint64
	seqSet bool // seq holds the next sequence number the acceptor must use
}

// minToken is the shortest verifier any Kerberos PDU token can be: the
// 16-byte RFC 4121 header (AES) or the RFC 4757 token header and checksum
// (RC4-HMAC, longer).
const minToken = 16

// UnwrapEx checks the token's header (see header), lets go-msrpc decrypt
// and check a sealed PDU, and turns any failure, or a panic of its
// decoder, into ErrIntegrity.
func (v *krbVerifier) UnwrapEx(ctx context.Context, tok *gssapi.MessageTokenEx) (out *gssapi.MessageTokenEx, err error) {
	err = v.guard("sealed", tok, func() error {
		var err error
		out, err = v.Mechanism.UnwrapEx(ctx, tok)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// VerifySignatureEx checks a signed PDU (PKT_INTEGRITY) like UnwrapEx.
func (v *krbVerifier) VerifySignatureEx(ctx context.Context, tok *gssapi.MessageTokenEx) error {
	return v.guard("signed", tok, func() error { return v.Mechanism.VerifySignatureEx(ctx, tok) })
}

func (v *krbVerifier) guard(kind string, tok *gssapi.MessageTokenEx, check func() error) (err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.broken != nil {
		return v.broken
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the verifier does not decode (%v)", r)
		}
		if err != nil {
			v.broken = fmt.Errorf("%w: Kerberos, %s PDU: %v", ErrIntegrity, kind, err)
			err = v.broken
		}
	}()
	if tok == nil || len(tok.Signature) < minToken {
		n := 0
		if tok != nil {
			n = len(tok.Signature)
		}
		return fmt.Errorf("a verifier of %d bytes is no Kerberos token", n)
	}
	if err := v.header(kind == "sealed", tok.Signature); err != nil {
		return err
	}
	if err := check(); err != nil {
		return err
	}
	v.seq++
	return nil
}

// The Kerberos mechanism's OID as the RFC 1964 / RFC 4757 token framing
// (RC4-HMAC) carries it: [APPLICATION 0] length, OID 1.2.840.113554.1.2.2.
var krb5OID = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}

// header checks what go-msrpc's ciphers leave unchecked in a received
// token: for AES (RFC 4121 4.2.6), the token ID, the filler, the
// SentByAcceptor flag, the Sealed flag for a sealed PDU, and the sequence
// number, which must be the acceptor's next (from its AP-REP, then one
// more per PDU); for RC4-HMAC, the GSS framing with the Kerberos OID
// (its token header and sequence number go-msrpc checks itself). The
// AcceptorSubkey flag is not checked: go-msrpc's acceptor leaves it clear
// while it seals with its subkey, and the key is the client's choice, not
// the flag's. None of
// these fields changes the data, and the AES sequence number in the clear
// is not the one the checksum covers (go-msrpc does not compare the
// encrypted copy), so this is hygiene, not a defence against replay.
func (v *krbVerifier) header(sealed bool, sgn []byte) error {
	switch {
	case sgn[0] == 0x60:
		if len(sgn) < 2+len(krb5OID) || string(sgn[2:2+len(krb5OID)]) != string(krb5OID) {
			return errors.New("the RC4-HMAC token's framing does not name Kerberos")
		}
		return nil
	case sgn[0] != 0x05 && sgn[0] != 0x04 || sgn[1] != 0x04:
		return fmt.Errorf("unknown token ID %02x%02x", sgn[0], sgn[1])
	}
	wrap := sgn[0] == 0x05
	const sentByAcceptor, sealedFlag = 0x01, 0x02
	fl := sgn[2]
	a := v.Mechanism.Authentifier
	switch {
	case wrap != sealed:
		return fmt.Errorf("token ID %02x04 for a %s PDU", sgn[0], map[bool]string{true: "sealed", false: "signed"}[sealed])
	case fl&sentByAcceptor == 0:
		return errors.New("the token was not sent by the acceptor")
	case sealed && fl&sealedFlag == 0:
		return errors.New("the token of a sealed PDU is not marked sealed")
	case wrap && sgn[3] != 0xff, !wrap && string(sgn[3:8]) != "\xff\xff\xff\xff\xff":
		return errors.New("the token's filler is wrong")
	}
	seq := binary.BigEndian.Uint64(sgn[8:16])
	if !v.seqSet {
		if a != nil && a.APRep != nil {
			v.seq, v.seqSet = uint64(a.APRep.DecryptedEncPart.SequenceNumber), true
		}
	}
	if v.seqSet && seq != v.seq {
		return fmt.Errorf("sequence number %d, want %d", seq, v.seq)
	}
	return nil
}
