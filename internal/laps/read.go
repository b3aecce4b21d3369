package laps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Entry is one directory object as a Searcher returns it.
type Entry struct {
	DN string
	// Attributes maps attribute names (any case) to their values.
	Attributes map[string][][]byte
}

// get returns the first value of attr (case-insensitive).
func (e *Entry) get(attr string) ([]byte, bool) {
	for k, v := range e.Attributes {
		if strings.EqualFold(k, attr) && len(v) > 0 {
			return v[0], true
		}
	}
	return nil, false
}

// Searcher finds one directory object. LDAPSearcher adapts a go-ldap
// connection; the session wiring will adapt adauth's directory
// connection.
type Searcher interface {
	// SearchOne returns the object matching filter at or below base
	// (subtree; a base-object search when filter is empty), with attrs.
	// It returns (nil, nil) when nothing matches, and an error when more
	// than one object does.
	SearchOne(ctx context.Context, base, filter string, attrs []string) (*Entry, error)
}

// LDAPSearcher is a Searcher over a go-ldap client, which must already be
// bound. It does not close the client.
type LDAPSearcher struct {
	Client ldap.Client
}

// SearchOne implements Searcher. go-ldap's Search takes no context: the
// client's own timeout bounds it, and the context is checked first.
func (s LDAPSearcher) SearchOne(ctx context.Context, base, filter string, attrs []string) (*Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scope := ldap.ScopeWholeSubtree
	if filter == "" {
		scope, filter = ldap.ScopeBaseObject, "(objectClass=*)"
	}
	res, err := s.Client.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 2, 0, false, filter, attrs, nil))
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil, nil
		}
		return nil, fmt.Errorf("laps: search %s: %w", base, err)
	}
	switch len(res.Entries) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("laps: search %s for %s: %d objects match", base, filter, len(res.Entries))
	}
	e := &Entry{DN: res.Entries[0].DN, Attributes: map[string][][]byte{}}
	for _, a := range res.Entries[0].Attributes {
		e.Attributes[a.Name] = a.ByteValues
	}
	return e, nil
}

// Attributes are the attributes Reader asks for.
var Attributes = []string{AttrEncryptedPassword, AttrPassword, AttrExpiration, AttrLegacyPassword, AttrLegacyExpiration}

// Reader reads a computer's LAPS password from the directory and, for the
// encrypted format, decrypts it with keys from Keys. The zero value needs
// Directory set; Keys is needed only for encrypted passwords.
//
// It does not bind, locate DCs, retry, or cache passwords.
type Reader struct {
	Directory Searcher
	// BaseDN is where ReadComputer searches (the domain's naming
	// context).
	BaseDN string
	// Keys answers GetKey for encrypted passwords; nil makes them fail
	// with ErrUnsupported.
	Keys KeySource
	// Now is the clock for the expiry check; nil means time.Now.
	Now func() time.Time
	// Logger receives what was found (formats, DNs; never values); nil
	// discards.
	Logger *slog.Logger
}

func (r *Reader) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// ReadComputer finds the computer object whose sAMAccountName is name$
// (name is the NetBIOS computer name; a DNS name's first label is used)
// below BaseDN and reads its password (see ReadEntry).
func (r *Reader) ReadComputer(ctx context.Context, name string) (*Password, error) {
	name, _, _ = strings.Cut(name, ".")
	if name == "" || len(name) > 15 || strings.ContainsAny(name, `\/:*?"<>|,=+;@[] `) {
		return nil, fmt.Errorf("%w: computer name %q", ErrMalformed, name)
	}
	filter := "(&(objectCategory=computer)(sAMAccountName=" + ldap.EscapeFilter(name+"$") + "))"
	e, err := r.Directory.SearchOne(ctx, r.BaseDN, filter, Attributes)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, fmt.Errorf("%w: %s$ below %s", ErrComputerNotFound, name, r.BaseDN)
	}
	return r.ReadEntry(ctx, e)
}

// ReadDN reads the password of the computer object dn (see ReadEntry).
func (r *Reader) ReadDN(ctx context.Context, dn string) (*Password, error) {
	e, err := r.Directory.SearchOne(ctx, dn, "", Attributes)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrComputerNotFound, dn)
	}
	return r.ReadEntry(ctx, e)
}

// ReadEntry reads the password from an object read with Attributes. It
// prefers Windows LAPS encrypted, then plain, then legacy, and returns
// the first that yields a password; if none does, the first error:
//
//   - no attribute at all: ErrNoAttribute;
//   - an expiration attribute without its password (LAPS always writes
//     both, and the expiration attributes are not confidential): a
//     *NotReadableError (ErrNotReadable);
//   - a refused GetKey: a *RefusedError naming the blob's group SID.
//
// When the password has expired, ReadEntry returns it together with an
// *ExpiredError, so the caller can report the diagnosis or still try it
// (a computer that was offline has not rotated it yet).
//
// Limits: an account that may read neither the password nor the
// expiration attribute (a stricter ACL than LAPS sets) cannot be told
// apart from a computer LAPS does not manage, and gets ErrNoAttribute.
// allowedAttributesEffective is not consulted: it lists the attributes
// the account may write, not those it may read.
func (r *Reader) ReadEntry(ctx context.Context, e *Entry) (*Password, error) {
	log := r.logger()
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	winExp, hasWinExp := e.get(AttrExpiration)
	legExp, hasLegExp := e.get(AttrLegacyExpiration)
	var first error
	try := func(p *Password, err error) (*Password, bool) {
		if err != nil {
			if first == nil {
				first = err
			}
			return nil, false
		}
		p.DN = e.DN
		return p, true
	}
	var found *Password
	if v, ok := e.get(AttrEncryptedPassword); ok {
		p, ok := try(r.decrypt(ctx, v, string(winExp)))
		if ok {
			found = p
		}
	}
	if v, ok := e.get(AttrPassword); ok && found == nil {
		if p, ok := try(ParseWindows(v, string(winExp))); ok {
			found = p
		}
	}
	if v, ok := e.get(AttrLegacyPassword); ok && found == nil {
		if p, ok := try(ParseLegacy(string(v), string(legExp))); ok {
			found = p
		}
	}
	if found != nil {
		log.Debug("laps: password read", "dn", e.DN, "format", found.Format.Token())
		if err := found.CheckExpiry(now()); err != nil {
			return found, err
		}
		return found, nil
	}
	if first != nil {
		log.Debug("laps: no usable password", "dn", e.DN, "err", first)
		return nil, first
	}
	var withheld []string
	if hasWinExp {
		withheld = append(withheld, AttrPassword+" or "+AttrEncryptedPassword)
	}
	if hasLegExp {
		withheld = append(withheld, AttrLegacyPassword)
	}
	if len(withheld) > 0 {
		log.Debug("laps: password attributes withheld", "dn", e.DN)
		return nil, &NotReadableError{DN: e.DN, Attributes: withheld,
			Evidence: "the expiration time is set but the directory withheld the password, a confidential attribute"}
	}
	return nil, fmt.Errorf("%w: %s", ErrNoAttribute, e.DN)
}

// ErrNoKeySource is matched (with ErrUnsupported) when an encrypted
// password is found and Reader.Keys is nil.
var ErrNoKeySource = errors.New("laps: an encrypted password needs GetKey, and no key source is set")

func (r *Reader) decrypt(ctx context.Context, v []byte, exp string) (*Password, error) {
	enc, err := ParseEncrypted(v)
	if err != nil {
		return nil, err
	}
	if r.Keys == nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, ErrNoKeySource)
	}
	return enc.Decrypt(ctx, r.Keys, exp)
}

// Present returns the LAPS format that e holds in a readable form, without
// decrypting anything (for a listing's `laps` field), or None.
func Present(e *Entry) Format {
	switch {
	case has(e, AttrEncryptedPassword):
		return WindowsEncrypted
	case has(e, AttrPassword):
		return Windows
	case has(e, AttrLegacyPassword):
		return Legacy
	}
	return None
}

func has(e *Entry, attr string) bool { _, ok := e.get(attr); return ok }
