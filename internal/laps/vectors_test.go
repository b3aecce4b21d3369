package laps

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rootKeyVector is one jborean93/dpapi-ng vector (see testdata/README.md).
type rootKeyVector struct {
	RootKeyID                 string `json:"RootKeyId"`
	KdfAlgorithm              string
	KdfParameters             string
	SecretAgreementAlgorithm  string
	SecretAgreementParameters string
	PrivateKeyLength          uint32
	PublicKeyLength           uint32
	RootKeyData               string
	Data                      string
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublicVectors decrypts the blobs that Windows made with known root
// keys (jborean93/dpapi-ng's tests/data, MIT): CMS parsing, the target
// security descriptor, the L0/L1/L2 derivation, the nonce and DH/ECDH key
// agreements, the key unwrap and GCM, each checked against Windows' own
// output. The plaintext of every vector is one 0x00 byte.
func TestPublicVectors(t *testing.T) {
	files, err := filepath.Glob("testdata/dpapi-ng-kdf_*.json")
	if err != nil || len(files) != 16 {
		t.Fatalf("want 16 vectors, have %d (%v)", len(files), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "dpapi-ng-"), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v rootKeyVector
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			id, err := ParseGUID(v.RootKeyID)
			if err != nil {
				t.Fatal(err)
			}
			rk := &RootKey{ID: id, Data: unhex(t, v.RootKeyData), KDFAlgorithm: v.KdfAlgorithm,
				KDFParameters: unhex(t, v.KdfParameters), SecretAlgorithm: v.SecretAgreementAlgorithm,
				SecretParameters: unhex(t, v.SecretAgreementParameters),
				PrivateKeyLength: v.PrivateKeyLength, PublicKeyLength: v.PublicKeyLength}
			blob, err := ParseBlob(unhex(t, v.Data))
			if err != nil {
				t.Fatal(err)
			}
			if blob.KeyID.RootKeyID != id {
				t.Fatalf("key identifier names root key %v, want %v", blob.KeyID.RootKeyID, id)
			}
			if want := strings.Contains(name, "dh"); blob.KeyID.PublicKey() != want {
				t.Fatalf("public-key identifier = %v, want %v", blob.KeyID.PublicKey(), want)
			}
			sd, err := TargetSD(blob.SID)
			if err != nil {
				t.Fatal(err)
			}
			k := blob.KeyID
			env, err := rk.Envelope(sd, k.L0, k.L1, k.L2)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := blob.Decrypt(env)
			if err != nil {
				t.Fatalf("decrypt: %v", err)
			}
			if !bytes.Equal(pt, []byte{0}) {
				t.Fatalf("plaintext %x, want 00", pt)
			}
			// A DC may answer with a later group key than the blob's: the
			// client derives down to the blob's L1/L2.
			// Each shape of MS-GKDI 2.2.4: a later L2 of the same L1, a
			// later L1 with L2 below 31 (L1Key is then L1-1's) and with
			// L2 = 31 (L1Key is L1's own).
			var later [][2]int32
			if k.L2 < 31 {
				later = append(later, [2]int32{k.L1, k.L2 + 1})
			}
			if k.L1 < 30 {
				later = append(later, [2]int32{k.L1 + 1, 5}, [2]int32{k.L1 + 2, 31})
			}
			for _, l := range later {
				env, err := rk.Envelope(sd, k.L0, l[0], l[1])
				if err != nil {
					t.Fatal(err)
				}
				if pt, err := blob.Decrypt(env); err != nil || !bytes.Equal(pt, []byte{0}) {
					t.Fatalf("decrypt with the envelope of L1 %d L2 %d: %x, %v", l[0], l[1], pt, err)
				}
			}
			// An envelope older than the blob's key cannot derive it.
			if k.L2 > 0 {
				env, _ := rk.Envelope(sd, k.L0, k.L1, k.L2-1)
				if _, err := blob.Decrypt(env); !errors.Is(err, ErrMalformed) {
					t.Fatalf("older envelope: %v", err)
				}
			}
			// Another SID's security descriptor gives other keys.
			other, _ := TargetSD("S-1-5-21-1-2-3-512")
			env2, err := rk.Envelope(other, k.L0, k.L1, k.L2)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := blob.Decrypt(env2); err == nil {
				t.Fatal("decrypted with the keys of another security descriptor")
			}
		})
	}
}

// TestPublicBlobFields parses the upstream LAPS-style blob (content after
// the CMS) and checks the fields that tests/test_blob.py lists.
func TestPublicBlobFields(t *testing.T) {
	raw, err := os.ReadFile("testdata/dpapi-ng-blob.bin")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBlob(raw)
	if err != nil {
		t.Fatal(err)
	}
	k := b.KeyID
	if k.Version != 1 || k.Flags != 3 || !k.PublicKey() || k.L0 != 361 || k.L1 != 16 || k.L2 != 3 {
		t.Fatalf("key identifier %+v", k)
	}
	if got := k.RootKeyID.String(); got != "d778c271-9025-9a82-f6dc-b8960b8ad8c5" {
		t.Fatalf("root key %s", got)
	}
	if k.Domain != "domain.test" || k.Forest != "domain.test" || len(k.KeyInfo) != 776 {
		t.Fatalf("domain %q forest %q key info %d bytes", k.Domain, k.Forest, len(k.KeyInfo))
	}
	if b.SID != "S-1-5-21-3337337973-3297078028-437386066-512" || b.Descriptor != "SID="+b.SID {
		t.Fatalf("SID %q", b.SID)
	}
	if got := hex.EncodeToString(b.WrappedKey); got != "897fc43f748efd095727dde98f4e1a6ffb9d4163d39fb374d049c73d89690c7efa45e6be119e0d6b" {
		t.Fatalf("wrapped key %s", got)
	}
	if got := hex.EncodeToString(b.Nonce); got != "9e5b2e17c23f04fc3525e118" || b.TagSize != 16 {
		t.Fatalf("nonce %s tag %d", got, b.TagSize)
	}
	if len(b.CipherText) != 146 || hex.EncodeToString(b.CipherText[:8]) != "e4cdf654722a49d5" || hex.EncodeToString(b.CipherText[144:]) != "55b6" {
		t.Fatalf("content %d bytes %x", len(b.CipherText), b.CipherText)
	}
}

// TestPublicGroupKeyEnvelope parses a GetKey answer from Windows and
// encodes it back byte for byte.
func TestPublicGroupKeyEnvelope(t *testing.T) {
	raw, err := os.ReadFile("testdata/dpapi-ng-group_key_envelope.bin")
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGroupKeyEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	if g.Flags != 2 || g.L0 != 361 || g.L1 != 17 || g.L2 != 8 || g.RootKeyID.String() != "d778c271-9025-9a82-f6dc-b8960b8ad8c5" ||
		g.KDFAlgorithm != "SP800_108_CTR_HMAC" || g.SecretAlgorithm != "DH" || g.PrivateKeyLength != 512 || g.PublicKeyLength != 2048 ||
		g.Domain != "domain.test" || g.Forest != "domain.test" || len(g.L1Key) != 64 || len(g.L2Key) != 64 {
		t.Fatalf("envelope %+v", g)
	}
	if !bytes.Equal(g.KDFParameters, KDFHashParameters("SHA512")) {
		t.Fatalf("KDF parameters %x", g.KDFParameters)
	}
	if hex.EncodeToString(g.L1Key[:4]) != "9c8f0385" || hex.EncodeToString(g.L2Key[:4]) != "1bac68a1" {
		t.Fatalf("keys %x %x", g.L1Key[:4], g.L2Key[:4])
	}
	if !bytes.Equal(g.Marshal(), raw) {
		t.Fatal("Marshal does not give the original bytes")
	}
}
