package laps

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/winenc"
)

const testSecret = "Zq7!x-Very-Secret-LAPS-pw"

func testRootKey(t testing.TB) *RootKey {
	t.Helper()
	data := make([]byte, 64)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	id, _ := ParseGUID("1b6e1f9a-5c2d-4e3f-8a7b-9c0d1e2f3a4b")
	return &RootKey{ID: id, Data: data, Domain: "lab.test", Forest: "lab.test"}
}

func ftString(t time.Time) string { return strconv.FormatInt(timeToFiletime(t), 10) }

func TestParseLegacy(t *testing.T) {
	exp := time.Date(2031, 5, 4, 3, 2, 1, 0, time.UTC)
	p, err := ParseLegacy(testSecret, ftString(exp))
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != Legacy || p.Secret != testSecret || p.Account != "" || !p.Expires.Equal(exp) {
		t.Fatalf("%+v", p)
	}
	if err := p.CheckExpiry(exp.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	err = p.CheckExpiry(exp.Add(time.Second))
	var ee *ExpiredError
	if !errors.Is(err, ErrExpired) || !errors.As(err, &ee) || !ee.Expired.Equal(exp) || ee.Format != Legacy {
		t.Fatalf("expiry: %v", err)
	}
	for _, bad := range []string{"x", "-5", "1e9"} {
		if _, err := ParseLegacy(testSecret, bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("expiration %q: %v", bad, err)
		}
	}
	if _, err := ParseLegacy("", ""); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty password: %v", err)
	}
	if p, err := ParseLegacy(testSecret, ""); err != nil || !p.Expires.IsZero() || p.CheckExpiry(time.Now()) != nil {
		t.Errorf("no expiration: %+v %v", p, err)
	}
}

func TestParseWindows(t *testing.T) {
	upd := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	exp := upd.Add(30 * 24 * time.Hour)
	p, err := ParseWindows(EncodeWindowsJSON("LapsAdmin", testSecret, upd), ftString(exp))
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != Windows || p.Account != "LapsAdmin" || p.Secret != testSecret || !p.Updated.Equal(upd) || !p.Expires.Equal(exp) {
		t.Fatalf("%+v", p)
	}
	// The form Windows writes (hex without 0x, lower case).
	p, err = ParseWindows([]byte(`{"n":"Administrator","t":"1d8161b41c41cde","p":"`+testSecret+`"}`), "")
	if err != nil || p.Account != "Administrator" || p.Updated.Year() != 2022 {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"n":"a","t":"1"}`, `{"n":"a","p":"` + testSecret + `"}`,
		`{"n":"","t":"1","p":"` + testSecret + `"}`, `{"n":"a","t":"zz","p":"` + testSecret + `"}`,
		`{"n":"DOM\\x","t":"1","p":"` + testSecret + `"}`, `{"n":"a","t":"1","p":"` + testSecret + `",}`,
	} {
		_, err := ParseWindows([]byte(bad), "")
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Errorf("%q: the error quotes the password: %v", bad, err)
		}
	}
}

// TestPasswordNeverPrinted formats a Password every way a log or an
// error would.
func TestPasswordNeverPrinted(t *testing.T) {
	p := &Password{Format: WindowsEncrypted, Account: "LapsAdmin", Secret: testSecret, Expires: time.Now()}
	for _, s := range []string{p.String(), fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s", p, p, p, p), p.LogValue().String(),
		(&ExpiredError{Format: Windows, Expired: time.Now()}).Error()} {
		if strings.Contains(s, testSecret) {
			t.Fatalf("printed the password: %s", s)
		}
	}
	if !strings.Contains(p.String(), "Windows LAPS (encrypted)") {
		t.Fatalf("String: %s", p)
	}
}

func TestFormatNames(t *testing.T) {
	want := map[Format][2]string{None: {"no LAPS", ""}, Legacy: {"legacy LAPS", "legacy"}, Windows: {"Windows LAPS", "windows"},
		WindowsEncrypted: {"Windows LAPS (encrypted)", "windows-encrypted"}}
	for f, w := range want {
		if f.String() != w[0] || f.Token() != w[1] {
			t.Errorf("%d: %q %q", f, f.String(), f.Token())
		}
	}
}

// TestProtectRoundTrip encrypts as a Windows LAPS client would (public
// key) and as an authorised caller would (nonce), wraps the blob in the
// msLAPS-EncryptedPassword header, and decrypts it again.
func TestProtectRoundTrip(t *testing.T) {
	rk := testRootKey(t)
	const sid = "S-1-5-21-1004336348-1177238915-682003330-512"
	upd := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	for _, nonce := range []bool{false, true} {
		pt := winenc.EncodeUTF16LE(string(EncodeWindowsJSON("LapsAdmin", testSecret, upd)) + "\x00")
		blob, err := Protect(rk, sid, pt, ProtectOptions{Nonce: nonce, Time: upd})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(blob, []byte(testSecret)) || bytes.Contains(blob, winenc.EncodeUTF16LE(testSecret)) {
			t.Fatal("the blob holds the password in the clear")
		}
		enc, err := ParseEncrypted(EncodeEncrypted(upd, blob))
		if err != nil {
			t.Fatal(err)
		}
		if !enc.Updated.Equal(upd) || enc.Blob.SID != sid || enc.Blob.KeyID.PublicKey() == nonce {
			t.Fatalf("parsed %+v %+v", enc, enc.Blob.KeyID)
		}
		sd, _ := TargetSD(sid)
		k := enc.Blob.KeyID
		if l0, l1, l2 := KeyIndexes(upd); k.L0 != l0 || k.L1 != l1 || k.L2 != l2 {
			t.Fatalf("indexes %d %d %d", k.L0, k.L1, k.L2)
		}
		env, err := rk.Envelope(sd, k.L0, k.L1, k.L2)
		if err != nil {
			t.Fatal(err)
		}
		// The envelope crosses the wire: decode what was encoded.
		env, err = ParseGroupKeyEnvelope(env.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		out, err := enc.Blob.Decrypt(env)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseDecrypted(out, "")
		if err != nil {
			t.Fatal(err)
		}
		if p.Format != WindowsEncrypted || p.Account != "LapsAdmin" || p.Secret != testSecret {
			t.Fatalf("%v", p)
		}
		// A flipped bit anywhere in the content fails authentication.
		enc.Blob.CipherText[3] ^= 1
		if _, err := enc.Blob.Decrypt(env); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("tampered content: %v", err)
		}
		enc.Blob.CipherText[3] ^= 1
		enc.Blob.WrappedKey[9] ^= 1
		if _, err := enc.Blob.Decrypt(env); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("tampered key: %v", err)
		}
		// The public key alone (what GetKey gives an unauthorised caller
		// of the encrypting kind) decrypts nothing.
		pub := *env
		pub.Flags |= flagPublicKey
		if _, err := enc.Blob.Decrypt(&pub); !errors.Is(err, ErrDecryptionRefused) {
			t.Fatalf("public envelope: %v", err)
		}
	}
}

func TestParseEncryptedHeader(t *testing.T) {
	rk := testRootKey(t)
	blob, err := Protect(rk, "S-1-5-32-544", []byte{0, 0}, ProtectOptions{Nonce: true})
	if err != nil {
		t.Fatal(err)
	}
	v := EncodeEncrypted(time.Now(), blob)
	for name, b := range map[string][]byte{
		"short":     v[:15],
		"size big":  append(append([]byte(nil), v[:8]...), append([]byte{0xff, 0xff, 0, 0}, v[12:]...)...),
		"size zero": append(append([]byte(nil), v[:8]...), append([]byte{0, 0, 0, 0}, v[12:]...)...),
		"truncated": v[:len(v)-len(blob)/2],
		"not CMS":   EncodeEncrypted(time.Now(), []byte("hello, world")),
	} {
		if _, err := ParseEncrypted(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzParse feeds arbitrary bytes to every parser: none may panic, and
// every failure must be typed.
func FuzzParse(f *testing.F) {
	rk := testRootKey(f)
	for _, nonce := range []bool{true, false} {
		blob, err := Protect(rk, "S-1-5-21-1-2-3-512", winenc.EncodeUTF16LE(`{"n":"a","t":"1","p":"b"}`), ProtectOptions{Nonce: nonce})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(EncodeEncrypted(time.Now(), blob))
		f.Add(blob)
	}
	env, _ := rk.Envelope(nil, 1, 2, 3)
	f.Add(env.Marshal())
	f.Add([]byte(`{"n":"Administrator","t":"1d8161b41c41cde","p":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		typed := func(err error) {
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("untyped error: %v", err)
			}
		}
		if e, err := ParseEncrypted(b); err == nil {
			// Decrypting with some envelope must fail cleanly too.
			if g, err := rk.Envelope(nil, e.Blob.KeyID.L0, e.Blob.KeyID.L1, e.Blob.KeyID.L2); err == nil {
				_, _ = e.Blob.Decrypt(g)
			}
		} else {
			typed(err)
		}
		_, err := ParseBlob(b)
		typed(err)
		if g, err := ParseGroupKeyEnvelope(b); err == nil {
			if k, err := ParseKeyIdentifier(b); err == nil {
				_, _ = g.KEK(k)
			}
		} else {
			typed(err)
		}
		_, err = ParseKeyIdentifier(b)
		typed(err)
		_, err = ParseWindows(b, "")
		typed(err)
		_, err = ParseDecrypted(b, "")
		typed(err)
	})
}
