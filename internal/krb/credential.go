package krb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"github.com/oiweiwei/gokrb5.fork/v9/credentials"
	"github.com/oiweiwei/gokrb5.fork/v9/keytab"
)

// Credential is a domain account and one secret to get its TGT with:
// Password (an AS exchange with pre-authentication), NTHash (RC4-HMAC
// key), AESKey (16 bytes AES128, 32 bytes AES256), Keytab, or CCache (a
// TGT obtained elsewhere, for example by kinit; no AS exchange is made).
// Exactly one secret must be set. Its String, GoString, Format and
// LogValue never show the secret.
type Credential struct {
	User  string // sAMAccountName, without domain
	Realm string // DNS realm; it is upper-cased
	// Password, NTHash, AESKey, Keytab or CCache: one of them.
	Password string
	NTHash   []byte
	AESKey   []byte
	Keytab   *keytab.Keytab
	CCache   *credentials.CCache
}

// ParseUser splits "DOMAIN\user" or "user@realm" into user and realm
// (upper case). A NetBIOS domain ("LCLAB\user") is returned as is: the
// caller maps it to the DNS realm. It does not check that the realm
// exists.
func ParseUser(s string) (user, realm string, err error) {
	s = strings.TrimSpace(s)
	if d, u, ok := strings.Cut(s, `\`); ok {
		user, realm = u, d
	} else if u, r, ok := strings.Cut(s, "@"); ok {
		user, realm = u, r
	} else {
		return "", "", fmt.Errorf("%w: %q names no domain (DOMAIN\\user or user@REALM)", ErrBadInput, s)
	}
	if user == "" || realm == "" || realm == "." {
		return "", "", fmt.Errorf("%w: %q: a domain account is needed (DOMAIN\\user or user@REALM)", ErrBadInput, s)
	}
	return user, strings.ToUpper(realm), nil
}

// LoadKeytab reads a keytab file. The keys stay in memory only.
func LoadKeytab(path string) (*keytab.Keytab, error) {
	kt, err := keytab.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%w: keytab %s: %v", ErrBadInput, path, err)
	}
	return kt, nil
}

// LoadCCache reads an MIT credentials cache file (KRB5CCNAME=FILE:path;
// the FILE: prefix is accepted).
func LoadCCache(path string) (*credentials.CCache, error) {
	path = strings.TrimPrefix(path, "FILE:")
	cc, err := credentials.LoadCCache(path)
	if err != nil {
		return nil, fmt.Errorf("%w: ccache %s: %v", ErrBadInput, path, err)
	}
	return cc, nil
}

func (c Credential) principal() string { return c.User + "@" + strings.ToUpper(c.Realm) }

// validate checks that c is usable and returns its cache key: the
// principal and a digest of the secret, so that a corrected password does
// not reuse the TGT that another secret obtained, and so that no secret
// is kept in the key.
func (c Credential) validate() (string, error) {
	n := 0
	h := sha256.New()
	if c.Password != "" {
		n++
		h.Write([]byte("pw\x00" + c.Password))
	}
	if len(c.NTHash) > 0 {
		n++
		if len(c.NTHash) != 16 {
			return "", fmt.Errorf("%w: NT hash of %d bytes (want 16)", ErrBadInput, len(c.NTHash))
		}
		h.Write([]byte("nt\x00"))
		h.Write(c.NTHash)
	}
	if len(c.AESKey) > 0 {
		n++
		if len(c.AESKey) != 16 && len(c.AESKey) != 32 {
			return "", fmt.Errorf("%w: AES key of %d bytes (want 16 or 32)", ErrBadInput, len(c.AESKey))
		}
		h.Write([]byte("aes\x00"))
		h.Write(c.AESKey)
	}
	if c.Keytab != nil {
		n++
		b, err := c.Keytab.Marshal()
		if err != nil {
			return "", fmt.Errorf("%w: keytab: %v", ErrBadInput, err)
		}
		h.Write([]byte("kt\x00"))
		h.Write(b)
	}
	if c.CCache != nil {
		n++
		h.Write([]byte("cc\x00"))
		for _, e := range c.CCache.Credentials {
			h.Write(e.Ticket)
		}
	}
	if n != 1 {
		return "", fmt.Errorf("%w: %s: want exactly one of password, NT hash, AES key, keytab, ccache (got %d)", ErrBadInput, c.principal(), n)
	}
	c = c.resolved()
	if c.User == "" || c.Realm == "" || strings.ContainsAny(c.User, `\@`) {
		return "", fmt.Errorf("%w: user %q realm %q", ErrBadInput, c.User, c.Realm)
	}
	return strings.ToLower(c.User) + "@" + strings.ToUpper(c.Realm) + "#" + hex.EncodeToString(h.Sum(nil)[:12]), nil
}

// resolved returns c with User and Realm taken from its ccache when they
// are empty, and the realm upper-cased.
func (c Credential) resolved() Credential {
	if c.CCache != nil {
		if c.User == "" {
			c.User = strings.Join(c.CCache.DefaultPrincipal.PrincipalName.NameString, "/")
		}
		if c.Realm == "" {
			c.Realm = c.CCache.DefaultPrincipal.Realm
		}
	}
	c.Realm = strings.ToUpper(c.Realm)
	return c
}

// kind names the secret without showing it.
func (c Credential) kind() string {
	switch {
	case c.Password != "":
		return "password"
	case len(c.NTHash) > 0:
		return "NT hash"
	case len(c.AESKey) > 0:
		return "AES key"
	case c.Keytab != nil:
		return "keytab"
	case c.CCache != nil:
		return "ccache"
	}
	return "no secret"
}

// String returns user@REALM and the kind of secret, never the secret.
func (c Credential) String() string { return c.principal() + " (" + c.kind() + ", redacted)" }

// GoString is String, so %#v does not print the secret.
func (c Credential) GoString() string { return "krb.Credential{" + c.String() + "}" }

// Format prints String for every verb.
func (c Credential) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// LogValue logs the principal and the kind of secret only.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("principal", c.principal()), slog.String("secret", c.kind()))
}
