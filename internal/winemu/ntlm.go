package winemu

// ntlmAcceptor is winemu's own server side of NTLM (MS-NLMP), used for
// DCE/RPC auth type 10 (RPC_C_AUTHN_WINNT). It replaces go-msrpc's
// acceptor there because that one requires a MIC in every AUTHENTICATE
// message, where Windows (MS-NLMP 3.2.5.1.2 and 3.2.5.2.2) checks the MIC
// only when the client's MsvAvFlags says it sent one, and treats the
// Version field as optional: impacket and older Windows clients send
// neither.

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/rc4"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oiweiwei/go-msrpc/ssp/crypto"
	"github.com/oiweiwei/go-msrpc/ssp/ntlm"

	"github.com/lanconnect/lanconnect/internal/winenc"
)

// NTLM wire constants (MS-NLMP 2.2).
const (
	ntlmMsgNegotiate    = 1
	ntlmMsgChallenge    = 2
	ntlmMsgAuthenticate = 3

	ntlmAuthHeaderSize = 64 // AUTHENTICATE up to and including NegotiateFlags
	ntlmMICOffset      = 72 // after the 8-byte Version
	ntlmMinV2Response  = 16 + 28

	avEOL       = 0
	avFlags     = 6
	avFlagMIC   = 0x2
	ntlmSigVers = 1
)

// Flags winemu's CHALLENGE may grant; anything else the client asks for
// is dropped from the answer.
const ntlmGrantable = ntlm.NegotiateUnicode | ntlm.RequestTarget | ntlm.NegotiateSign |
	ntlm.NegotiateSeal | ntlm.NegotiateNTLM | ntlm.NegotiateAlwaysSign |
	ntlm.NegotiateExtendedSessionSecurity | ntlm.NegotiateTargetInfo | ntlm.NegotiateVersion |
	ntlm.Negotiate128 | ntlm.NegotiateKeyExchange | ntlm.Negotiate56

var (
	magicSignC2S = []byte("session key to client-to-server signing key magic constant\x00")
	magicSignS2C = []byte("session key to server-to-client signing key magic constant\x00")
	magicSealC2S = []byte("session key to client-to-server sealing key magic constant\x00")
	magicSealS2C = []byte("session key to server-to-client sealing key magic constant\x00")
)

// ntlmAcceptor runs one NTLM exchange and then signs and seals for it.
// It serves NTLMv2 only (no LM, no NTLMv1, no anonymous logon) and
// connection-oriented sessions only (sequence numbers advance per message;
// the RC4 handles run on across messages).
type ntlmAcceptor struct {
	users map[string]User
	nb    string // NetBIOS computer name
	nbDom string // NetBIOS domain (workgroup) name
	dns   string
	dnsD  string
	now   func() time.Time

	negotiate, challenge []byte
	serverChallenge      []byte
	flags                ntlm.Flag

	user, domain string
	sessionKey   []byte // exported session key
	// sawMIC and sawVersion tell what the client's AUTHENTICATE carried
	// (for the log; neither is required).
	sawMIC, sawVersion bool

	signIn, signOut []byte
	sealIn, sealOut *rc4.Cipher
	seqIn, seqOut   uint32
}

// accept takes the client's NEGOTIATE and returns the CHALLENGE.
func (n *ntlmAcceptor) accept(negotiate []byte) ([]byte, error) {
	if len(negotiate) < 16 || string(negotiate[:8]) != "NTLMSSP\x00" ||
		binary.LittleEndian.Uint32(negotiate[8:]) != ntlmMsgNegotiate {
		return nil, errors.New("ntlm: not a NEGOTIATE message")
	}
	asked := ntlm.Flag(binary.LittleEndian.Uint32(negotiate[12:]))
	flags := asked&ntlmGrantable | ntlm.RequestTarget | ntlm.NegotiateNTLM |
		ntlm.NegotiateAlwaysSign | ntlm.NegotiateTargetInfo | ntlm.TargetTypeDomain
	if !flags.IsSet(ntlm.NegotiateUnicode) {
		flags |= ntlm.NegotiateOEM
	}
	sc := make([]byte, 8)
	if _, err := rand.Read(sc); err != nil {
		return nil, err
	}
	now := time.Now
	if n.now != nil {
		now = n.now
	}
	cm := &ntlm.ChallengeMessage{
		Negotiate:       flags,
		TargetName:      n.nbDom,
		ServerChallenge: sc,
		TargetInfo: ntlm.AttrValues{
			ntlm.AttrNetBIOSComputerName: &ntlm.Value{NetBIOSComputerName: n.nb},
			ntlm.AttrNetBIOSDomainName:   &ntlm.Value{NetBIOSDomainName: n.nbDom},
			ntlm.AttrDNSComputerName:     &ntlm.Value{DNSComputerName: n.dns},
			ntlm.AttrTimestamp:           &ntlm.Value{Timestamp: ntlm.TimeToFiletime(now())},
		},
	}
	if n.dnsD != "" {
		cm.TargetInfo[ntlm.AttrDNSDomainName] = &ntlm.Value{DNSDomainName: n.dnsD}
	}
	out, err := cm.Marshal(context.Background())
	if err != nil {
		return nil, fmt.Errorf("ntlm: marshal CHALLENGE: %w", err)
	}
	n.negotiate = append([]byte(nil), negotiate...)
	n.challenge = out
	n.serverChallenge = sc
	n.flags = flags
	return out, nil
}

// ntlmAuthenticate is the part of an AUTHENTICATE message the acceptor uses.
type ntlmAuthenticate struct {
	lm, nt, domain, user, encKey []byte
	flags                        ntlm.Flag
	payloadStart                 int // lowest payload offset
}

// parseAuthenticate reads an AUTHENTICATE message's fixed header and
// payload fields, checking every field lies inside the message.
func parseAuthenticate(b []byte) (*ntlmAuthenticate, error) {
	if len(b) < ntlmAuthHeaderSize || string(b[:8]) != "NTLMSSP\x00" ||
		binary.LittleEndian.Uint32(b[8:]) != ntlmMsgAuthenticate {
		return nil, errors.New("ntlm: not an AUTHENTICATE message")
	}
	a := &ntlmAuthenticate{payloadStart: len(b)}
	field := func(at int) ([]byte, error) {
		l := int(binary.LittleEndian.Uint16(b[at:]))
		off := int(binary.LittleEndian.Uint32(b[at+4:]))
		if l == 0 {
			return nil, nil
		}
		if off < ntlmAuthHeaderSize || off > len(b) || l > len(b)-off {
			return nil, fmt.Errorf("ntlm: AUTHENTICATE field at %d out of bounds", at)
		}
		a.payloadStart = min(a.payloadStart, off)
		return b[off : off+l], nil
	}
	for _, f := range []struct {
		at  int
		dst *[]byte
	}{{12, &a.lm}, {20, &a.nt}, {28, &a.domain}, {36, &a.user}, {44, nil}, {52, &a.encKey}} {
		v, ferr := field(f.at)
		if ferr != nil {
			return nil, ferr
		}
		if f.dst != nil {
			*f.dst = v
		}
	}
	a.flags = ntlm.Flag(binary.LittleEndian.Uint32(b[60:]))
	return a, nil
}

// avPairFlags returns MsvAvFlags from the AV pairs of an NTLMv2 client
// challenge (the NT response after NTProofStr and 28 fixed bytes).
func avPairFlags(pairs []byte) (uint32, error) {
	for len(pairs) >= 4 {
		id := binary.LittleEndian.Uint16(pairs)
		l := int(binary.LittleEndian.Uint16(pairs[2:]))
		if id == avEOL {
			return 0, nil
		}
		if l > len(pairs)-4 {
			return 0, errors.New("ntlm: truncated AV pair")
		}
		if id == avFlags {
			if l != 4 {
				return 0, errors.New("ntlm: bad MsvAvFlags")
			}
			return binary.LittleEndian.Uint32(pairs[4:]), nil
		}
		pairs = pairs[4+l:]
	}
	return 0, errors.New("ntlm: AV pairs without MsvAvEOL")
}

// finish verifies the client's AUTHENTICATE message and derives the
// session's keys. It reports the account that matched (the key of users).
// The error never names the password or the hash.
func (n *ntlmAcceptor) finish(msg []byte) (string, error) {
	if n.challenge == nil {
		return "", errors.New("ntlm: AUTHENTICATE before CHALLENGE")
	}
	am, err := parseAuthenticate(msg)
	if err != nil {
		return "", err
	}
	if !am.flags.IsSet(ntlm.NegotiateUnicode) {
		return "", errors.New("ntlm: OEM strings are not served")
	}
	if len(am.nt) < ntlmMinV2Response {
		// Empty: anonymous; 24 bytes: NTLMv1. Neither is served.
		return "", errors.New("ntlm: not an NTLMv2 response (anonymous and NTLMv1 logons are refused)")
	}
	user, domain := winenc.DecodeUTF16LE(am.user), winenc.DecodeUTF16LE(am.domain)
	var (
		key  string
		acct User
	)
	for name, u := range n.users {
		if strings.EqualFold(name, user) {
			key, acct = name, u
		}
	}
	if key == "" {
		return "", errors.New("ntlm: unknown account")
	}
	nth, err := accountNTHash(acct)
	if err != nil {
		return "", err
	}
	respKey := hmacMD5(nth, winenc.EncodeUTF16LE(strings.ToUpper(user)+domain))
	proof, blob := am.nt[:16], am.nt[16:]
	want := hmacMD5(respKey, n.serverChallenge, blob)
	if subtle.ConstantTimeCompare(proof, want) != 1 {
		return "", errors.New("ntlm: wrong password (NTProofStr mismatch)")
	}
	if blob[0] != 1 || blob[1] != 1 {
		return "", errors.New("ntlm: unknown NTLMv2 client challenge version")
	}
	avFl, err := avPairFlags(blob[28:])
	if err != nil {
		return "", err
	}
	baseKey := hmacMD5(respKey, proof)
	exported := baseKey // KeyExchangeKey is the session base key in NTLMv2
	// The AUTHENTICATE's flags are the final choice: a client may drop
	// KEY_EXCH that the CHALLENGE offered.
	if !am.flags.IsSet(ntlm.NegotiateKeyExchange) {
		n.flags &^= ntlm.NegotiateKeyExchange
	}
	if n.flags.IsSet(ntlm.NegotiateKeyExchange) {
		if len(am.encKey) != 16 {
			return "", errors.New("ntlm: KEY_EXCH without a 16-byte encrypted session key")
		}
		c, _ := rc4.NewCipher(baseKey)
		exported = make([]byte, 16)
		c.XORKeyStream(exported, am.encKey)
	}
	if avFl&avFlagMIC != 0 {
		if am.payloadStart < ntlmMICOffset+16 {
			return "", errors.New("ntlm: MsvAvFlags announces a MIC the message has no room for")
		}
		zeroed := append([]byte(nil), msg...)
		clear(zeroed[ntlmMICOffset : ntlmMICOffset+16])
		mic := hmacMD5(exported, n.negotiate, n.challenge, zeroed)
		if subtle.ConstantTimeCompare(mic, msg[ntlmMICOffset:ntlmMICOffset+16]) != 1 {
			return "", errors.New("ntlm: MIC mismatch")
		}
	}
	// Signing and sealing keys (MS-NLMP 3.4.5); extended session security
	// is what every NTLMv2 client negotiates, and the only mode served.
	if !n.flags.IsSet(ntlm.NegotiateExtendedSessionSecurity) {
		return "", errors.New("ntlm: extended session security not negotiated")
	}
	sealKey := exported
	switch {
	case n.flags.IsSet(ntlm.Negotiate128):
	case n.flags.IsSet(ntlm.Negotiate56):
		sealKey = exported[:7]
	default:
		sealKey = exported[:5]
	}
	n.signIn = md5Sum(exported, magicSignC2S)
	n.signOut = md5Sum(exported, magicSignS2C)
	n.sealIn, _ = rc4.NewCipher(md5Sum(sealKey, magicSealC2S))
	n.sealOut, _ = rc4.NewCipher(md5Sum(sealKey, magicSealS2C))
	n.user, n.domain, n.sessionKey = key, domain, exported
	n.sawMIC = avFl&avFlagMIC != 0
	n.sawVersion = am.flags.IsSet(ntlm.NegotiateVersion) && am.payloadStart >= ntlmMICOffset
	return key, nil
}

// verifyIn checks a client signature over parts (MS-NLMP 3.4.4.2);
// when sealed is non-nil (one of parts) it is decrypted in place first.
// The sequence number advances either way.
func (n *ntlmAcceptor) verifyIn(parts [][]byte, sealed []byte, sig []byte) error {
	if sealed != nil {
		n.sealIn.XORKeyStream(sealed, sealed)
	}
	want := n.signature(n.signIn, n.sealIn, &n.seqIn, parts)
	if subtle.ConstantTimeCompare(want, sig) != 1 {
		return errors.New("ntlm: signature mismatch")
	}
	return nil
}

// protectOut signs parts for the client; when sealed is non-nil (one of
// parts) it is encrypted in place after the checksum is taken.
func (n *ntlmAcceptor) protectOut(parts [][]byte, sealed []byte) []byte {
	return n.signature(n.signOut, n.sealOut, &n.seqOut, parts, sealed)
}

// signature makes the NTLM signature of parts (the checksum over the
// plaintext, then the optional in-place encryption of sealed, then the
// checksum's encryption under KEY_EXCH, on the same RC4 handle) and
// advances the sequence number.
func (n *ntlmAcceptor) signature(key []byte, rc *rc4.Cipher, seq *uint32, parts [][]byte, sealed ...[]byte) []byte {
	h := hmac.New(md5.New, key)
	_ = binary.Write(h, binary.LittleEndian, *seq)
	for _, p := range parts {
		h.Write(p)
	}
	sum := h.Sum(nil)[:8]
	for _, b := range sealed {
		if b != nil {
			rc.XORKeyStream(b, b)
		}
	}
	if n.flags.IsSet(ntlm.NegotiateKeyExchange) {
		rc.XORKeyStream(sum, sum)
	}
	sig := make([]byte, 16)
	binary.LittleEndian.PutUint32(sig, ntlmSigVers)
	copy(sig[4:], sum)
	binary.LittleEndian.PutUint32(sig[12:], *seq)
	*seq++
	return sig
}

// accountNTHash returns the account's NT hash: the stored one, or MD4 of
// the UTF-16LE password.
func accountNTHash(u User) ([]byte, error) {
	if u.NTHash != "" {
		h, err := hex.DecodeString(u.NTHash)
		if err != nil || len(h) != 16 {
			return nil, errors.New("ntlm: account's NT hash is not 32 hex digits")
		}
		return h, nil
	}
	return crypto.MD4(winenc.EncodeUTF16LE(u.Password))
}

func hmacMD5(key []byte, parts ...[]byte) []byte {
	h := hmac.New(md5.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func md5Sum(parts ...[]byte) []byte {
	h := md5.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}
