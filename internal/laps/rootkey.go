package laps

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// RootKey is a KDS root key (an msKds-ProvRootKey object): the secret
// from which a DC derives every group key (MS-GKDI 3.1.4.1.2). The SDK
// never holds a real one; tests and the lab use synthetic root keys to
// serve GetKey and to encrypt blobs as a Windows LAPS client would.
type RootKey struct {
	ID   GUID
	Data []byte // msKds-RootKeyData, 64 bytes
	// KDFAlgorithm is "SP800_108_CTR_HMAC" when empty.
	KDFAlgorithm string
	// KDFParameters name the hash; nil means SHA512.
	KDFParameters []byte
	// SecretAlgorithm is "DH", "ECDH_P256", "ECDH_P384" or "ECDH_P521";
	// empty means ECDH_P256 (Windows' default is DH).
	SecretAlgorithm  string
	SecretParameters []byte
	// PrivateKeyLength and PublicKeyLength are in bits; zero means the
	// secret algorithm's (256 for ECDH_P256).
	PrivateKeyLength, PublicKeyLength uint32
	Domain, Forest                    string
}

func (rk *RootKey) kdfAlgorithm() string {
	if rk.KDFAlgorithm == "" {
		return "SP800_108_CTR_HMAC"
	}
	return rk.KDFAlgorithm
}

func (rk *RootKey) kdfParameters() []byte {
	if rk.KDFParameters == nil {
		return KDFHashParameters("SHA512")
	}
	return rk.KDFParameters
}

func (rk *RootKey) secretAlgorithm() string {
	if rk.SecretAlgorithm == "" {
		return "ECDH_P256"
	}
	return rk.SecretAlgorithm
}

func (rk *RootKey) keyLengths() (uint32, uint32) {
	priv, pub := rk.PrivateKeyLength, rk.PublicKeyLength
	if priv == 0 || pub == 0 {
		switch rk.secretAlgorithm() {
		case "ECDH_P256":
			priv, pub = 256, 256
		case "ECDH_P384":
			priv, pub = 384, 384
		case "ECDH_P521":
			priv, pub = 521, 521
		case "DH":
			priv, pub = 512, 2048
		}
	}
	return priv, pub
}

// Envelope returns the group key envelope that a DC answers GetKey with,
// for a caller whom the target security descriptor sd grants decryption:
// the private seed keys of (l0, l1, l2), derived from the root key
// (MS-GKDI 3.1.4.1.2). It does not check any access: the caller decides
// who may have it.
func (rk *RootKey) Envelope(sd []byte, l0, l1, l2 int32) (*GroupKeyEnvelope, error) {
	if err := checkIndexes(l0, l1, l2); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	h, err := kdfHash(rk.kdfAlgorithm(), rk.kdfParameters())
	if err != nil {
		return nil, err
	}
	l0Key := kdf(h, rk.Data, kdsLabel, kdfContext(rk.ID, l0, -1, -1), 64)
	l1Key := kdf(h, l0Key, kdsLabel, append(kdfContext(rk.ID, l0, 31, -1), sd...), 64)
	for i := int32(31); i > l1; i-- {
		l1Key = kdf(h, l1Key, kdsLabel, kdfContext(rk.ID, l0, i-1, -1), 64)
	}
	l2Key := kdf(h, l1Key, kdsLabel, kdfContext(rk.ID, l0, l1, 31), 64)
	for j := int32(31); j > l2; j-- {
		l2Key = kdf(h, l2Key, kdsLabel, kdfContext(rk.ID, l0, l1, j-1), 64)
	}
	// L1Key is (l0, l1, -1) when l2 is 31, else (l0, l1-1, -1), which
	// does not exist for l1 = 0 (MS-GKDI 2.2.4).
	var given []byte
	if l2 == 31 {
		given = l1Key
	} else if l1 > 0 {
		given = kdf(h, l1Key, kdsLabel, kdfContext(rk.ID, l0, l1-1, -1), 64)
	}
	priv, pub := rk.keyLengths()
	return &GroupKeyEnvelope{
		Version: 1, Flags: flagHasL2Key, L0: l0, L1: l1, L2: l2, RootKeyID: rk.ID,
		KDFAlgorithm: rk.kdfAlgorithm(), KDFParameters: rk.kdfParameters(),
		SecretAlgorithm: rk.secretAlgorithm(), SecretParameters: rk.SecretParameters,
		PrivateKeyLength: priv, PublicKeyLength: pub,
		Domain: rk.Domain, Forest: rk.Forest, L1Key: given, L2Key: l2Key,
	}, nil
}

// KeyIndexes returns the L0, L1 and L2 indexes of the group key that is
// current at t (MS-GKDI 3.1.4.1: an L2 interval is 10 hours).
func KeyIndexes(t time.Time) (l0, l1, l2 int32) {
	ft := timeToFiletime(t)
	const base = 360000000000 // 10 h in 100 ns
	return int32(ft / (32 * 32 * base)), int32(ft % (32 * 32 * base) / (32 * base)), int32(ft % (32 * base) / base)
}

// ProtectOptions are the choices of Protect.
type ProtectOptions struct {
	// Time selects the group key (KeyIndexes); zero means now.
	Time time.Time
	// Nonce makes a symmetric key identifier (a random 32-byte KeyInfo),
	// as a caller authorised to decrypt gets; otherwise the blob is
	// encrypted for the group's public key, as Windows LAPS does.
	Nonce bool
	// Rand is the randomness; nil means crypto/rand.
	Rand io.Reader
}

// Protect encrypts plaintext into a DPAPI-NG blob for the protection
// descriptor "SID=sid", with a key derived from rk, as NCryptProtectSecret
// does on a computer that received the envelope from GetKey. It exists
// for tests and the lab (it needs the root key, which only a DC holds);
// the SDK itself never encrypts. Public-key blobs need an ECDH secret
// algorithm.
func Protect(rk *RootKey, sid string, plaintext []byte, o ProtectOptions) ([]byte, error) {
	rnd := o.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	t := o.Time
	if t.IsZero() {
		t = time.Now()
	}
	sd, err := TargetSD(sid)
	if err != nil {
		return nil, err
	}
	l0, l1, l2 := KeyIndexes(t)
	env, err := rk.Envelope(sd, l0, l1, l2)
	if err != nil {
		return nil, err
	}
	id := &KeyIdentifier{Version: 1, Flags: flagHasL2Key, L0: l0, L1: l1, L2: l2, RootKeyID: rk.ID, Domain: rk.Domain, Forest: rk.Forest}
	if o.Nonce {
		id.KeyInfo = make([]byte, 32)
		if _, err := io.ReadFull(rnd, id.KeyInfo); err != nil {
			return nil, err
		}
	} else {
		h, err := kdfHash(env.KDFAlgorithm, env.KDFParameters)
		if err != nil {
			return nil, err
		}
		var c ecdh.Curve
		var magic uint32
		switch env.SecretAlgorithm {
		case "ECDH_P256":
			c, magic = ecdh.P256(), ecdhP256Magic
		case "ECDH_P384":
			c, magic = ecdh.P384(), ecdhP384Magic
		case "ECDH_P521":
			c, magic = ecdh.P521(), ecdhP521Magic
		default:
			return nil, fmt.Errorf("%w: Protect with public key and %q", ErrUnsupported, env.SecretAlgorithm)
		}
		// The group's private key must be valid for the curve, as the
		// decryptor will derive it.
		if _, err := c.NewPrivateKey(kdf(h, env.L2Key, kdsLabel, utf16z(env.SecretAlgorithm), int(env.PrivateKeyLength+7)/8)); err != nil {
			return nil, err
		}
		eph, err := c.GenerateKey(rnd)
		if err != nil {
			return nil, err
		}
		pt := eph.PublicKey().Bytes()[1:]
		n := len(pt) / 2
		id.Flags |= flagPublicKey
		id.KeyInfo = binary.LittleEndian.AppendUint32(nil, magic)
		id.KeyInfo = binary.LittleEndian.AppendUint32(id.KeyInfo, uint32(n))
		id.KeyInfo = append(id.KeyInfo, pt...)
		// The KEK is symmetric in the two private keys: derive it as the
		// decryptor will, from the group's private key and the
		// ephemeral public key (the encryptor would use the group's
		// public key and the ephemeral private key).
	}
	kek, err := env.KEK(id)
	if err != nil {
		return nil, err
	}
	return seal(rnd, id, sid, kek, plaintext)
}
