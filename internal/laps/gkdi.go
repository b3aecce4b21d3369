package laps

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"math/big"
	"strings"

	"github.com/lanconnect/lanconnect/internal/winenc"
)

// GUID is a GUID in its wire form (the first three fields little-endian),
// as MS-GKDI structures carry a root key identifier.
type GUID [16]byte

// String formats g as 8-4-4-4-12 hexadecimal digits.
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[0:]),
		binary.LittleEndian.Uint16(g[4:]), binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

// ParseGUID parses the 8-4-4-4-12 form.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	s = strings.Trim(s, "{}")
	var d1 uint32
	var d2, d3 uint16
	var rest [8]byte
	if len(s) != 36 {
		return g, fmt.Errorf("%w: GUID %q", ErrMalformed, s)
	}
	if _, err := fmt.Sscanf(s, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", &d1, &d2, &d3,
		&rest[0], &rest[1], &rest[2], &rest[3], &rest[4], &rest[5], &rest[6], &rest[7]); err != nil {
		return g, fmt.Errorf("%w: GUID %q", ErrMalformed, s)
	}
	binary.LittleEndian.PutUint32(g[0:], d1)
	binary.LittleEndian.PutUint16(g[4:], d2)
	binary.LittleEndian.PutUint16(g[6:], d3)
	copy(g[8:], rest[:])
	return g, nil
}

// kdsMagic is "KDSK" as a little-endian uint32: the magic of both the key
// identifier and the group key envelope.
const kdsMagic = 0x4b53444b

// Flags of KeyIdentifier and GroupKeyEnvelope.
const (
	// flagPublicKey: KeyInfo (or the envelope's L2 key) is a public key.
	flagPublicKey = 1
	// flagHasL2Key: the envelope carries an L2 key (MS-GKDI 2.2.4).
	flagHasL2Key = 2
)

// KeyIdentifier is the GKDI key identifier that a DPAPI-NG blob names in
// its KEKRecipientInfo: which root key and which L0/L1/L2 group key the
// key-encryption key was derived from, and the KeyInfo that completes the
// derivation (a 32-byte nonce, or the encryptor's public key when Flags
// has bit 0 set). Microsoft does not publish the structure; it mirrors the
// group key envelope (MS-GKDI 2.2.4).
type KeyIdentifier struct {
	Version    uint32
	Flags      uint32
	L0, L1, L2 int32
	RootKeyID  GUID
	KeyInfo    []byte
	Domain     string
	Forest     string
}

// PublicKey reports whether KeyInfo is the encryptor's public key.
func (k *KeyIdentifier) PublicKey() bool { return k.Flags&flagPublicKey != 0 }

// reader is a bounds-checked little-endian reader; after the first short
// read it returns zero values and err is set.
type reader struct {
	b   []byte
	err error
	// what names the structure in errors.
	what string
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = &FormatError{What: r.what, Reason: fmt.Sprintf(format, args...)}
	}
}

func (r *reader) bytes(n uint32) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.fail("needs %d more bytes, has %d", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

// utf16z decodes n bytes of null-terminated UTF-16LE.
func (r *reader) utf16z(n uint32) string {
	b := r.bytes(n)
	if r.err != nil {
		return ""
	}
	if n%2 != 0 {
		r.fail("odd UTF-16 length %d", n)
		return ""
	}
	s := winenc.DecodeUTF16LE(b)
	return strings.TrimSuffix(s, "\x00")
}

// utf16z returns s UTF-16LE encoded with a terminating null.
func utf16z(s string) []byte { return winenc.EncodeUTF16LE(s + "\x00") }

// ParseKeyIdentifier decodes a GKDI key identifier.
func ParseKeyIdentifier(b []byte) (*KeyIdentifier, error) {
	r := &reader{b: b, what: "GKDI key identifier"}
	k := &KeyIdentifier{Version: r.u32()}
	if m := r.u32(); r.err == nil && m != kdsMagic {
		r.fail("bad magic %#x", m)
	}
	k.Flags = r.u32()
	k.L0, k.L1, k.L2 = int32(r.u32()), int32(r.u32()), int32(r.u32())
	copy(k.RootKeyID[:], r.bytes(16))
	infoLen, domLen, forLen := r.u32(), r.u32(), r.u32()
	k.KeyInfo = r.bytes(infoLen)
	k.Domain = r.utf16z(domLen)
	k.Forest = r.utf16z(forLen)
	if r.err != nil {
		return nil, r.err
	}
	if k.Version != 1 {
		return nil, &FormatError{What: r.what, Reason: fmt.Sprintf("version %d", k.Version)}
	}
	if err := checkIndexes(k.L0, k.L1, k.L2); err != nil {
		return nil, &FormatError{What: r.what, Reason: err.Error()}
	}
	return k, nil
}

func checkIndexes(l0, l1, l2 int32) error {
	if l0 < 0 || l1 < 0 || l1 > 31 || l2 < 0 || l2 > 31 {
		return fmt.Errorf("key indexes L0 %d, L1 %d, L2 %d out of range", l0, l1, l2)
	}
	return nil
}

// Marshal encodes k.
func (k *KeyIdentifier) Marshal() []byte {
	dom, forest := utf16z(k.Domain), utf16z(k.Forest)
	b := make([]byte, 0, 52+len(k.KeyInfo)+len(dom)+len(forest))
	for _, v := range []uint32{k.Version, kdsMagic, k.Flags, uint32(k.L0), uint32(k.L1), uint32(k.L2)} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = append(b, k.RootKeyID[:]...)
	for _, v := range []int{len(k.KeyInfo), len(dom), len(forest)} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	b = append(b, k.KeyInfo...)
	b = append(b, dom...)
	return append(b, forest...)
}

// GroupKeyEnvelope is the answer of MS-GKDI GetKey (MS-GKDI 2.2.4): the
// root key's algorithms and the seed keys for one L0/L1/L2 index.
//
// L1Key holds the L1 seed key (L0, L1, -1) when L2 is 31 and (L0, L1-1,
// -1) otherwise; L2Key holds the L2 seed key (L0, L1, L2), or the group's
// public key when Flags has bit 0 set (the caller may encrypt for the
// group but not decrypt).
type GroupKeyEnvelope struct {
	Version          uint32
	Flags            uint32
	L0, L1, L2       int32
	RootKeyID        GUID
	KDFAlgorithm     string
	KDFParameters    []byte
	SecretAlgorithm  string
	SecretParameters []byte
	PrivateKeyLength uint32 // bits
	PublicKeyLength  uint32 // bits
	Domain, Forest   string
	L1Key, L2Key     []byte
}

// ParseGroupKeyEnvelope decodes a GetKey answer.
// The envelope owns a copy of b's bytes.
func ParseGroupKeyEnvelope(b []byte) (*GroupKeyEnvelope, error) {
	r := &reader{b: bytes.Clone(b), what: "GKDI group key envelope"}
	g := &GroupKeyEnvelope{Version: r.u32()}
	if m := r.u32(); r.err == nil && m != kdsMagic {
		r.fail("bad magic %#x", m)
	}
	g.Flags = r.u32()
	g.L0, g.L1, g.L2 = int32(r.u32()), int32(r.u32()), int32(r.u32())
	copy(g.RootKeyID[:], r.bytes(16))
	kdfAlg, kdfPar, secAlg, secPar := r.u32(), r.u32(), r.u32(), r.u32()
	g.PrivateKeyLength, g.PublicKeyLength = r.u32(), r.u32()
	l1, l2, dom, forest := r.u32(), r.u32(), r.u32(), r.u32()
	g.KDFAlgorithm = r.utf16z(kdfAlg)
	g.KDFParameters = r.bytes(kdfPar)
	g.SecretAlgorithm = r.utf16z(secAlg)
	g.SecretParameters = r.bytes(secPar)
	g.Domain = r.utf16z(dom)
	g.Forest = r.utf16z(forest)
	g.L1Key = r.bytes(l1)
	g.L2Key = r.bytes(l2)
	if r.err != nil {
		return nil, r.err
	}
	if g.Version != 1 {
		return nil, &FormatError{What: r.what, Reason: fmt.Sprintf("version %d", g.Version)}
	}
	if err := checkIndexes(g.L0, g.L1, g.L2); err != nil {
		return nil, &FormatError{What: r.what, Reason: err.Error()}
	}
	return g, nil
}

// Marshal encodes g.
func (g *GroupKeyEnvelope) Marshal() []byte {
	kdfAlg, secAlg := utf16z(g.KDFAlgorithm), utf16z(g.SecretAlgorithm)
	dom, forest := utf16z(g.Domain), utf16z(g.Forest)
	var b []byte
	for _, v := range []uint32{g.Version, kdsMagic, g.Flags, uint32(g.L0), uint32(g.L1), uint32(g.L2)} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	b = append(b, g.RootKeyID[:]...)
	for _, v := range []int{len(kdfAlg), len(g.KDFParameters), len(secAlg), len(g.SecretParameters),
		int(g.PrivateKeyLength), int(g.PublicKeyLength), len(g.L1Key), len(g.L2Key), len(dom), len(forest)} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	for _, p := range [][]byte{kdfAlg, g.KDFParameters, secAlg, g.SecretParameters, dom, forest, g.L1Key, g.L2Key} {
		b = append(b, p...)
	}
	return b
}

// kdsLabel is the SP 800-108 label of every GKDI derivation: "KDS service"
// in null-terminated UTF-16LE (MS-GKDI 3.1.4.1.2).
var kdsLabel = utf16z("KDS service")

// kdsPublicKeyLabel names the public-key KEK derivation (DPAPI-NG).
var kdsPublicKeyLabel = utf16z("KDS public key")

// kdf is the SP 800-108 KDF in counter mode with HMAC: a 32-bit counter
// before the fixed data, label || 0x00 || context, and the output length
// in bits as a 32-bit big-endian integer.
func kdf(h func() hash.Hash, key, label, context []byte, n int) []byte {
	out := make([]byte, 0, n+64)
	var ctr, bits [4]byte
	binary.BigEndian.PutUint32(bits[:], uint32(n*8))
	for i := uint32(1); len(out) < n; i++ {
		m := hmac.New(h, key)
		binary.BigEndian.PutUint32(ctr[:], i)
		m.Write(ctr[:])
		m.Write(label)
		m.Write([]byte{0})
		m.Write(context)
		m.Write(bits[:])
		out = m.Sum(out)
	}
	return out[:n]
}

// kdfContext is the derivation context RootKeyID || L0 || L1 || L2.
func kdfContext(id GUID, l0, l1, l2 int32) []byte {
	b := append([]byte(nil), id[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(l0))
	b = binary.LittleEndian.AppendUint32(b, uint32(l1))
	return binary.LittleEndian.AppendUint32(b, uint32(l2))
}

// KDFHashParameters encodes the KDF parameters (MS-GKDI 2.2.1) that name
// hash, for example "SHA512".
func KDFHashParameters(hashName string) []byte {
	name := utf16z(hashName)
	b := []byte{0, 0, 0, 0, 1, 0, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, 0, 0, 0, 0)
	return append(b, name...)
}

// kdfHash returns the hash the KDF parameters name.
func kdfHash(alg string, params []byte) (func() hash.Hash, error) {
	if alg != "SP800_108_CTR_HMAC" {
		return nil, fmt.Errorf("%w: KDF algorithm %q", ErrUnsupported, alg)
	}
	r := &reader{b: params, what: "GKDI KDF parameters"}
	r.bytes(8)
	n := r.u32()
	r.bytes(4)
	name := r.utf16z(n)
	if r.err != nil {
		return nil, r.err
	}
	return hashByName(name)
}

func hashByName(name string) (func() hash.Hash, error) {
	switch strings.ToUpper(name) {
	case "SHA1":
		return sha1.New, nil
	case "SHA256":
		return sha256.New, nil
	case "SHA384":
		return sha512.New384, nil
	case "SHA512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("%w: KDF hash %q", ErrUnsupported, name)
}

// l2Key derives the L2 seed key (L0, l1, l2) from the envelope g, which
// must hold the private seed keys of the same L0 and of the same or a
// later L1/L2 index (MS-GKDI 3.1.4.1.2; keys are derived downwards from
// index 31).
func (g *GroupKeyEnvelope) l2Key(h func() hash.Hash, l1, l2 int32) ([]byte, error) {
	if g.Flags&flagPublicKey != 0 {
		return nil, fmt.Errorf("%w: the envelope holds only the group's public key", ErrDecryptionRefused)
	}
	if l1 > g.L1 || (l1 == g.L1 && l2 > g.L2) {
		return nil, &FormatError{What: "GKDI group key envelope", Reason: fmt.Sprintf("key (%d, %d) is later than the envelope's (%d, %d)", l1, l2, g.L1, g.L2)}
	}
	if l1 == g.L1 {
		if len(g.L2Key) != 64 {
			return nil, &FormatError{What: "GKDI group key envelope", Reason: fmt.Sprintf("L2 key of %d bytes", len(g.L2Key))}
		}
		k := g.L2Key
		for i := g.L2; i > l2; i-- {
			k = kdf(h, k, kdsLabel, kdfContext(g.RootKeyID, g.L0, l1, i-1), 64)
		}
		return k, nil
	}
	if len(g.L1Key) != 64 {
		return nil, &FormatError{What: "GKDI group key envelope", Reason: fmt.Sprintf("L1 key of %d bytes", len(g.L1Key))}
	}
	k, cur := g.L1Key, g.L1
	if g.L2 != 31 {
		cur-- // L1Key is (L0, L1-1, -1)
	}
	for ; cur > l1; cur-- {
		k = kdf(h, k, kdsLabel, kdfContext(g.RootKeyID, g.L0, cur-1, -1), 64)
	}
	k = kdf(h, k, kdsLabel, kdfContext(g.RootKeyID, g.L0, l1, 31), 64)
	for i := int32(31); i > l2; i-- {
		k = kdf(h, k, kdsLabel, kdfContext(g.RootKeyID, g.L0, l1, i-1), 64)
	}
	return k, nil
}

// KEK derives the key-encryption key that the key identifier names from
// the envelope: for a nonce key identifier, KDF(L2 key, KeyInfo); for a
// public-key identifier, the group's private key is derived from the L2
// key and agreed (DH or ECDH) with the encryptor's public key in KeyInfo,
// then hashed with SP 800-56A's concatenation KDF and the SP 800-108 KDF.
func (g *GroupKeyEnvelope) KEK(id *KeyIdentifier) ([]byte, error) {
	if g.RootKeyID != id.RootKeyID || g.L0 != id.L0 {
		return nil, &FormatError{What: "GKDI group key envelope", Reason: fmt.Sprintf("is for root key %v L0 %d, the blob needs %v L0 %d", g.RootKeyID, g.L0, id.RootKeyID, id.L0)}
	}
	h, err := kdfHash(g.KDFAlgorithm, g.KDFParameters)
	if err != nil {
		return nil, err
	}
	l2, err := g.l2Key(h, id.L1, id.L2)
	if err != nil {
		return nil, err
	}
	if !id.PublicKey() {
		return kdf(h, l2, kdsLabel, id.KeyInfo, 32), nil
	}
	if g.PrivateKeyLength == 0 || g.PrivateKeyLength > 8192 {
		return nil, &FormatError{What: "GKDI group key envelope", Reason: fmt.Sprintf("private key length %d bits", g.PrivateKeyLength)}
	}
	priv := kdf(h, l2, kdsLabel, utf16z(g.SecretAlgorithm), int(g.PrivateKeyLength+7)/8)
	secret, sh, err := agree(g.SecretAlgorithm, priv, id.KeyInfo)
	if err != nil {
		return nil, err
	}
	// SP 800-56A concatenation KDF, one block: H(counter 1 || Z ||
	// AlgorithmID || PartyUInfo || PartyVInfo).
	m := sh()
	m.Write([]byte{0, 0, 0, 1})
	m.Write(secret)
	m.Write(utf16z("SHA512"))
	m.Write(kdsPublicKeyLabel)
	m.Write(kdsLabel)
	return kdf(h, m.Sum(nil), kdsLabel, kdsPublicKeyLabel, 32), nil
}

// Magics of the public key structures (MS-GKDI 2.2.3).
const (
	dhPublicMagic = 0x42504844 // "DHPB"
	dhParamsMagic = 0x4d504844 // "DHPM"
	ecdhP256Magic = 0x314b4345 // "ECK1"
	ecdhP384Magic = 0x334b4345 // "ECK3"
	ecdhP521Magic = 0x354b4345 // "ECK5"
)

// agree computes the shared secret of the private key priv (big-endian)
// with the public key pub (an FFC DH key or an ECDH key structure), and
// returns the hash the concatenation KDF uses for that algorithm.
func agree(alg string, priv, pub []byte) ([]byte, func() hash.Hash, error) {
	r := &reader{b: pub, what: "DPAPI-NG public key"}
	magic := r.u32()
	n := r.u32()
	if r.err != nil {
		return nil, nil, r.err
	}
	switch {
	case alg == "DH" && magic == dhPublicMagic:
		if n == 0 || n > 1024 {
			return nil, nil, &FormatError{What: r.what, Reason: fmt.Sprintf("DH key length %d", n)}
		}
		p := new(big.Int).SetBytes(r.bytes(n))
		r.bytes(n) // generator
		y := new(big.Int).SetBytes(r.bytes(n))
		if r.err != nil {
			return nil, nil, r.err
		}
		one := big.NewInt(1)
		pm1 := new(big.Int).Sub(p, one)
		if p.Sign() <= 0 || y.Cmp(one) <= 0 || y.Cmp(pm1) >= 0 {
			return nil, nil, &FormatError{What: r.what, Reason: "DH public value out of range"}
		}
		z := new(big.Int).Exp(y, new(big.Int).SetBytes(priv), p)
		return z.FillBytes(make([]byte, n)), sha256.New, nil
	case strings.HasPrefix(alg, "ECDH_P"):
		var c ecdh.Curve
		var sh func() hash.Hash
		switch {
		case alg == "ECDH_P256" && magic == ecdhP256Magic:
			c, sh = ecdh.P256(), sha256.New
		case alg == "ECDH_P384" && magic == ecdhP384Magic:
			c, sh = ecdh.P384(), sha512.New384
		case alg == "ECDH_P521" && magic == ecdhP521Magic:
			c, sh = ecdh.P521(), sha512.New
		default:
			return nil, nil, &FormatError{What: r.what, Reason: fmt.Sprintf("key magic %#x for %s", magic, alg)}
		}
		x, y := r.bytes(n), r.bytes(n)
		if r.err != nil {
			return nil, nil, r.err
		}
		pk, err := c.NewPublicKey(append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, nil, &FormatError{What: r.what, Reason: err.Error()}
		}
		sk, err := c.NewPrivateKey(priv)
		if err != nil {
			return nil, nil, &FormatError{What: "derived ECDH private key", Reason: err.Error()}
		}
		z, err := sk.ECDH(pk)
		if err != nil {
			return nil, nil, &FormatError{What: r.what, Reason: err.Error()}
		}
		return z, sh, nil
	}
	return nil, nil, fmt.Errorf("%w: secret agreement %q with key magic %#x", ErrUnsupported, alg, magic)
}
