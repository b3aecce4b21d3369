package adauth

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// ErrBadCredentials is matched (errors.Is) by every error that rejects
// credential input: an unparseable account name, an NT hash of the wrong
// length. Such errors never contain the secret.
var ErrBadCredentials = errors.New("adauth: bad credentials")

// LocalDomain is the Domain of an account local to the target computer,
// as written in ".\user".
const LocalDomain = "."

// Credentials are a Windows account and its secret: a password or an NT
// hash. The zero value is anonymous (no user, no secret).
//
// Credentials never reveal their secret when printed: String, the fmt
// verbs %v, %+v, %#v and %s, slog and encoding/json all show the account
// with the secret redacted. Only Password and NTHash return it, for the
// code that must send it to a peer.
type Credentials struct {
	// User is the account name, without domain.
	User string
	// Domain is the NetBIOS or DNS domain, LocalDomain (".") for an account
	// local to the target, or empty when not given (the target decides).
	Domain string

	password string
	ntHash   []byte // 16 bytes when set
}

// Parse reads an account written as "DOMAIN\user", "user@domain.tld",
// ".\user", "MACHINE\user" or plain "user", and pairs it with password.
// It does not check the account against anything; it only splits it.
// Errors match ErrBadCredentials.
func Parse(account, password string) (Credentials, error) {
	c, err := parseAccount(account)
	if err != nil {
		return Credentials{}, err
	}
	c.password = password
	return c, nil
}

// ParseWithHash is Parse with an NT hash (32 hexadecimal digits, as
// printed by tools such as secretsdump) instead of a password.
func ParseWithHash(account, ntHashHex string) (Credentials, error) {
	c, err := parseAccount(account)
	if err != nil {
		return Credentials{}, err
	}
	h, err := hex.DecodeString(strings.TrimSpace(ntHashHex))
	if err != nil || len(h) != 16 {
		// Never echo the hash text back: it is a secret.
		return Credentials{}, fmt.Errorf("%w: NT hash must be 32 hexadecimal digits", ErrBadCredentials)
	}
	c.ntHash = h
	return c, nil
}

func parseAccount(account string) (Credentials, error) {
	a := strings.TrimSpace(account)
	if a == "" {
		return Credentials{}, fmt.Errorf("%w: empty account name", ErrBadCredentials)
	}
	var c Credentials
	switch {
	case strings.Contains(a, `\`):
		i := strings.Index(a, `\`)
		c.Domain, c.User = a[:i], a[i+1:]
		if c.Domain == "" {
			return Credentials{}, fmt.Errorf("%w: empty domain in %q", ErrBadCredentials, account)
		}
	case strings.Contains(a, "@"):
		i := strings.LastIndex(a, "@")
		c.User, c.Domain = a[:i], a[i+1:]
		if c.Domain == "" {
			return Credentials{}, fmt.Errorf("%w: empty domain in %q", ErrBadCredentials, account)
		}
	default:
		c.User = a
	}
	if c.User == "" {
		return Credentials{}, fmt.Errorf("%w: empty user name in %q", ErrBadCredentials, account)
	}
	if strings.ContainsAny(c.User, `\@/"[]:;|=+*?<>`) {
		return Credentials{}, fmt.Errorf("%w: user name %q has a character Windows does not allow", ErrBadCredentials, c.User)
	}
	return c, nil
}

// Password returns the password, and whether one is set.
func (c Credentials) Password() (string, bool) { return c.password, c.password != "" }

// NTHash returns a copy of the NT hash, or nil when none is set.
func (c Credentials) NTHash() []byte {
	if c.ntHash == nil {
		return nil
	}
	return append([]byte(nil), c.ntHash...)
}

// WithPassword returns a copy of c with the password replaced and any NT
// hash removed.
func (c Credentials) WithPassword(password string) Credentials {
	c.password, c.ntHash = password, nil
	return c
}

// HasSecret reports whether a password or an NT hash is set.
func (c Credentials) HasSecret() bool { return c.password != "" || c.ntHash != nil }

// IsZero reports whether c is anonymous: no user and no secret.
func (c Credentials) IsZero() bool { return c.User == "" && !c.HasSecret() }

// IsLocal reports whether the account is local to the target (".\user").
func (c Credentials) IsLocal() bool { return c.Domain == LocalDomain }

// Account returns the account in DOMAIN\user form (or user alone when no
// domain is set). It never contains the secret.
func (c Credentials) Account() string {
	if c.Domain == "" {
		return c.User
	}
	return c.Domain + `\` + c.User
}

func (c Credentials) secretKind() string {
	switch {
	case c.ntHash != nil:
		return "nthash"
	case c.password != "":
		return "password"
	}
	return "none"
}

// String returns the account and the kind of secret, redacted, for
// example `CORP\alice (password: REDACTED)`.
func (c Credentials) String() string {
	if c.IsZero() {
		return "anonymous"
	}
	if !c.HasSecret() {
		return c.Account() + " (no secret)"
	}
	return c.Account() + " (" + c.secretKind() + ": REDACTED)"
}

// GoString implements fmt.GoStringer (%#v) without the secret.
func (c Credentials) GoString() string {
	return fmt.Sprintf("adauth.Credentials{User:%q, Domain:%q, secret:%q}", c.User, c.Domain, c.secretKind()+" REDACTED")
}

// Format implements fmt.Formatter so that every verb, %+v included, prints
// the redacted form.
func (c Credentials) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, c.GoString())
		return
	}
	fmt.Fprint(f, c.String())
}

// LogValue implements slog.LogValuer: the account and the kind of secret.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("account", c.Account()),
		slog.String("secret", c.secretKind()+" REDACTED"),
	)
}

// MarshalJSON encodes the account only; the secret is never serialised.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"user":%q,"domain":%q,"secret":%q}`, c.User, c.Domain, c.secretKind()+" REDACTED"), nil
}
