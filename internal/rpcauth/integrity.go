package rpcauth

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rc4"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/oiweiwei/go-msrpc/ssp/credential"
	"github.com/oiweiwei/go-msrpc/ssp/gssapi"
	"github.com/oiweiwei/go-msrpc/ssp/ntlm"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// ErrIntegrity is matched (errors.Is) by the error of a call whose sealed
// response, or any later PDU on the same security context, failed the
// NTLMSSP signature check: the data was altered on the way, or the peer
// does not hold the session keys. It is adauth.ErrIntegrity, so that
// callers outside the module can match it.
var ErrIntegrity = adauth.ErrIntegrity

// NTLM flags from MS-NLMP 2.2.2.5 that the verifier needs.
const (
	flagNegotiate56    = 1 << 31
	flagKeyExchange    = 1 << 30
	flagNegotiate128   = 1 << 29
	flagESS            = 1 << 19
	flagNegotiateDgram = 1 << 6
)

var (
	magicSignC2S = []byte("session key to client-to-server signing key magic constant\x00")
	magicSignS2C = []byte("session key to server-to-client signing key magic constant\x00")
	magicSealC2S = []byte("session key to client-to-server sealing key magic constant\x00")
	magicSealS2C = []byte("session key to server-to-client sealing key magic constant\x00")
)

// VerifyingNTLM is a go-msrpc gssapi.MechanismFactory for NTLM whose
// mechanisms verify the signature of every sealed PDU they unwrap (see the
// package documentation). Everything else (negotiation, sealing of
// requests, signing at PKT_INTEGRITY) is go-msrpc's own NTLM.
//
// The zero value is ready to use and holds no state: each security
// context gets its own mechanism from New. Config, when set, is the NTLM
// configuration used instead of go-msrpc's default.
type VerifyingNTLM struct {
	Config *ntlm.Config
	// Expect, when it is a computer name (not empty, not an IP literal),
	// is compared with the identity in the server's NTLM CHALLENGE before
	// the AUTHENTICATE message is made (smbconn.CheckIdentity). On a
	// mismatch the bind fails with an error that wraps an
	// *smbconn.IdentityError, and no AUTHENTICATE (AUTH3) is sent.
	Expect string
	// Local says that the credential names an account of the target
	// itself (".\user"; Options sets it): its AUTHENTICATE carries the
	// computer's NetBIOS name from the server's CHALLENGE as its domain
	// (smbconn.ChallengeInfo.LocalAccountDomain), as the SMB logon does,
	// instead of the credential's empty domain, which a domain member
	// looks up in its domain. A credential with a domain is left alone.
	Local bool
}

var (
	_ gssapi.MechanismFactory = VerifyingNTLM{}
	_ gssapi.Mechanism        = (*verifier)(nil)
	_ gssapi.MechanismEx      = (*verifier)(nil)
)

// Type returns the NTLM mechanism OID, so that the factory replaces
// go-msrpc's NTLM in a security context's own mechanism store.
func (VerifyingNTLM) Type() gssapi.OID { return ntlm.MechanismType }

// DefaultConfig returns a copy of f.Config, or go-msrpc's default NTLM
// configuration (NTLMv2, MIC, 128-bit keys).
func (f VerifyingNTLM) DefaultConfig(ctx context.Context) (gssapi.MechanismConfig, error) {
	if f.Config != nil {
		return f.Config.Copy(), nil
	}
	return ntlm.NewConfig(), nil
}

// New returns a fresh verifying mechanism around a fresh go-msrpc NTLM
// mechanism.
func (f VerifyingNTLM) New(ctx context.Context) (gssapi.Mechanism, error) {
	inner, err := ntlm.Mechanism{}.New(ctx)
	if err != nil {
		return nil, err
	}
	m, ok := inner.(*ntlm.Mechanism)
	if !ok {
		return nil, fmt.Errorf("rpcauth: unexpected NTLM mechanism type %T", inner)
	}
	return &verifier{Mechanism: m, expect: f.Expect, local: f.Local}, nil
}

// verifier wraps go-msrpc's NTLM mechanism and keeps an independent copy
// of the inbound half of the NTLM session security state.
type verifier struct {
	*ntlm.Mechanism
	expect string // see VerifyingNTLM.Expect
	local  bool   // see VerifyingNTLM.Local

	mu     sync.Mutex
	in     *inbound // nil until the context is established
	setup  error    // why in could not be made, reported on first unwrap
	broken error    // sticky: once a PDU fails, all later ones fail
}

// inbound is the receive side of MS-NLMP session security (3.4.4.2, with
// extended session security): the peer's signing key, the RC4 handle
// keyed with the peer's sealing key, and the next expected sequence
// number.
type inbound struct {
	signKey     []byte
	seal        *rc4.Cipher
	seq         uint32
	keyExchange bool
}

// Init runs go-msrpc's client side and, once it has produced the
// AUTHENTICATE message, derives the inbound keys.
func (v *verifier) Init(ctx context.Context, tok *gssapi.Token) (*gssapi.Token, error) {
	if tok != nil && len(tok.Payload) > 0 && (v.local || smbconn.ExpectsIdentity(v.expect)) {
		ci, perr := smbconn.ParseChallenge(tok.Payload)
		if smbconn.ExpectsIdentity(v.expect) {
			if perr != nil {
				return nil, fmt.Errorf("rpcauth: %w", &smbconn.IdentityError{Expected: v.expect, Unreadable: true})
			}
			if err := smbconn.CheckIdentity(ci, v.expect); err != nil {
				return nil, fmt.Errorf("rpcauth: %w", err)
			}
		}
		if d := ci.LocalAccountDomain(); v.local && perr == nil && d != "" {
			v.localDomain(d)
		}
	}
	out, err := v.Mechanism.Init(ctx, tok)
	if err != nil || out == nil {
		return out, err
	}
	if flags, ok := authenticateFlags(out.Payload); ok {
		v.establish(false, flags)
	}
	return out, err
}

// localDomain gives the mechanism's credential the domain d, when it has
// none, before the AUTHENTICATE is built from it (see VerifyingNTLM.Local).
// The NEGOTIATE, already sent, carried no domain either way.
func (v *verifier) localDomain(d string) {
	c := v.Mechanism.Config.Credential
	if c == nil || c.DomainName() != "" {
		return
	}
	opts := []credential.Option{credential.Domain(d), credential.Workstation(c.Workstation())}
	switch c := c.(type) {
	case credential.NTHash:
		v.Mechanism.Config.Credential = credential.NewFromNTHashBytes(c.UserName(), c.NTHash(), opts...)
	case credential.Password:
		v.Mechanism.Config.Credential = credential.NewFromPassword(c.UserName(), c.Password(), opts...)
	}
}

// Accept runs go-msrpc's server side and, once it has verified the
// client's AUTHENTICATE message, derives the inbound keys.
func (v *verifier) Accept(ctx context.Context, tok *gssapi.Token) (*gssapi.Token, error) {
	out, err := v.Mechanism.Accept(ctx, tok)
	if err != nil || tok == nil {
		return out, err
	}
	if flags, ok := authenticateFlags(tok.Payload); ok {
		v.establish(true, flags)
	}
	return out, err
}

// authenticateFlags returns the NegotiateFlags of an NTLM AUTHENTICATE
// message (MS-NLMP 2.2.1.3: signature, type 3, six 8-byte fields, flags).
func authenticateFlags(b []byte) (uint32, bool) {
	if len(b) < 64 || string(b[:8]) != "NTLMSSP\x00" || binary.LittleEndian.Uint32(b[8:12]) != 3 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[60:64]), true
}

func (v *verifier) establish(isServer bool, flags uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.in, v.setup = nil, nil
	key := v.Mechanism.SessionKey()
	switch {
	case len(key) != 16:
		v.setup = errors.New("no NTLM session key")
		return
	case flags&flagESS == 0:
		v.setup = errors.New("NTLM extended session security was not negotiated")
		return
	case flags&flagNegotiateDgram != 0:
		v.setup = errors.New("connectionless NTLM is not supported")
		return
	}
	sealSrc := key[:5]
	switch {
	case flags&flagNegotiate128 != 0:
		sealSrc = key
	case flags&flagNegotiate56 != 0:
		sealSrc = key[:7]
	}
	signMagic, sealMagic := magicSignS2C, magicSealS2C
	if isServer {
		signMagic, sealMagic = magicSignC2S, magicSealC2S
	}
	sealKey := md5Sum(sealSrc, sealMagic)
	c, err := rc4.NewCipher(sealKey)
	if err != nil {
		v.setup = err
		return
	}
	v.in = &inbound{
		signKey:     md5Sum(key, signMagic),
		seal:        c,
		keyExchange: flags&flagKeyExchange != 0,
	}
}

func md5Sum(parts ...[]byte) []byte {
	h := md5.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// UnwrapEx lets go-msrpc decrypt the PDU, then recomputes and compares
// its signature. go-msrpc calls it once per PDU fragment, in order.
func (v *verifier) UnwrapEx(ctx context.Context, tokEx *gssapi.MessageTokenEx) (*gssapi.MessageTokenEx, error) {
	v.mu.Lock()
	defer v.mu.Unlock()

	if v.broken != nil {
		return nil, v.broken
	}
	fail := func(format string, args ...any) error {
		v.broken = fmt.Errorf("%w: "+format, append([]any{ErrIntegrity}, args...)...)
		return v.broken
	}
	switch {
	case v.setup != nil:
		return nil, fail("%v", v.setup)
	case v.in == nil:
		return nil, fail("security context is not established")
	case !v.Mechanism.Config.Integrity:
		return nil, fail("signing was not negotiated")
	}

	// What go-msrpc will decrypt in place, and what it will checksum:
	// the same rules as its UnwrapEx.
	conf := make([]bool, len(tokEx.Payloads))
	sealed := make([][]byte, len(tokEx.Payloads))
	for i, p := range tokEx.Payloads {
		conf[i] = v.Mechanism.Config.Confidentiality && p.Capabilities.IsSet(gssapi.Confidentiality)
		if conf[i] {
			sealed[i] = append([]byte(nil), p.Payload...)
		}
	}
	received := append([]byte(nil), tokEx.Signature...)

	out, err := v.Mechanism.UnwrapEx(ctx, tokEx)
	if err != nil {
		return nil, err
	}

	// Advance our own RC4 handle over the same ciphertext, and check that
	// our state and go-msrpc's agree on the plaintext.
	for i, p := range tokEx.Payloads {
		if !conf[i] {
			continue
		}
		v.in.seal.XORKeyStream(sealed[i], sealed[i])
		if subtle.ConstantTimeCompare(sealed[i], p.Payload) != 1 {
			return nil, fail("decryption state diverged")
		}
	}

	var seq [4]byte
	binary.LittleEndian.PutUint32(seq[:], v.in.seq)
	mac := hmac.New(md5.New, v.in.signKey)
	mac.Write(seq[:])
	for _, p := range tokEx.Payloads {
		if !v.Mechanism.Config.NoSignAllBuffers || p.Capabilities.IsSet(gssapi.Integrity) {
			mac.Write(p.Payload)
		}
	}
	checksum := mac.Sum(nil)[:8]
	if v.in.keyExchange {
		v.in.seal.XORKeyStream(checksum, checksum)
	}
	want := make([]byte, 16)
	binary.LittleEndian.PutUint32(want[0:4], 1) // NTLMSSP_MESSAGE_SIGNATURE version
	copy(want[4:12], checksum)
	copy(want[12:16], seq[:])
	v.in.seq++

	if len(received) != len(want) || subtle.ConstantTimeCompare(received, want) != 1 {
		return nil, fail("NTLMSSP signature mismatch on PDU %d", v.in.seq-1)
	}
	return out, nil
}

// WrapEx, MakeSignatureEx and VerifySignatureEx are go-msrpc's own: they
// protect requests and verify signed (PKT_INTEGRITY) PDUs correctly.

func (v *verifier) WrapEx(ctx context.Context, tokEx *gssapi.MessageTokenEx) (*gssapi.MessageTokenEx, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.Mechanism.WrapEx(ctx, tokEx)
}

func (v *verifier) MakeSignatureEx(ctx context.Context, tokEx *gssapi.MessageTokenEx) (*gssapi.MessageTokenEx, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.Mechanism.MakeSignatureEx(ctx, tokEx)
}

func (v *verifier) VerifySignatureEx(ctx context.Context, tokEx *gssapi.MessageTokenEx) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.Mechanism.VerifySignatureEx(ctx, tokEx)
}
