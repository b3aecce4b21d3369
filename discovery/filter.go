package discovery

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
)

// ErrBadFilter matches every error of ParseFilter (through *FilterError).
var ErrBadFilter = errors.New("bad filter")

// ErrUnknownQualifier is the cause of a *FilterError for a term of the
// form "word:value" whose word is not one of the qualifiers ParseFilter
// knows (domain, os, source).
var ErrUnknownQualifier = errors.New("unknown qualifier")

// ErrEmptyQualifier is the cause of a *FilterError for a qualifier with
// nothing after its colon ("os:"), as when a space follows the colon.
var ErrEmptyQualifier = errors.New("qualifier without a value")

// FilterError reports a filter term that cannot be parsed.
type FilterError struct {
	Term string // the offending term
	Err  error  // why; wraps ErrBadRange for address terms, ErrUnknownQualifier or ErrEmptyQualifier for qualifiers
}

// Error quotes the term and says what is wrong with it.
func (e *FilterError) Error() string {
	return fmt.Sprintf("bad filter term %q: %v", e.Term, e.Err)
}

// Unwrap returns the cause.
func (e *FilterError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBadFilter) true.
func (e *FilterError) Is(target error) bool { return target == ErrBadFilter }

// Filter selects hosts by name, address, domain, OS or source. Build one
// with ParseFilter.
//
// The zero Filter matches every host. A Filter is immutable and safe for
// concurrent use.
type Filter struct {
	text   string
	groups [][]term // OR of groups, each an AND of terms
}

type term struct {
	field field  // what a text pattern is matched against
	text  string // lower-cased pattern
	glob  bool
	addrs AddrRange // valid From: an address term
}

// field is what a term's text pattern matches.
type field uint8

const (
	fieldFree   field = iota // a bare word: NetBIOS name, DNS name, domain
	fieldDomain              // domain: the domain or workgroup
	fieldOS                  // os: the OS product name or version
	fieldSource              // source: one of the sources that saw the host
)

// qualifiers maps each qualifier word to its field.
var qualifiers = map[string]field{"domain": fieldDomain, "os": fieldOS, "source": fieldSource}

// ParseFilter parses a filter expression. The syntax is what a technician
// types in a search box:
//
//   - A term is an IP address ("10.1.2.3", exact match), a CIDR
//     ("10.1.2.0/24"), a range ("10.1.2.5-10.1.2.40"), a qualified term
//     ("domain:lab"), or a name pattern. Address terms match any of a
//     host's addresses.
//   - A name pattern without wildcards matches, case-insensitively, a
//     substring of the NetBIOS name, the DNS name or the domain or
//     workgroup ("srv"). With '*', '?' or '[...]' it is a glob that must
//     match the whole NetBIOS name, DNS name or domain ("heron*", "pc-0?").
//   - A qualified term is a qualifier, a colon and a pattern, with no space
//     between them. "domain:PATTERN" matches the domain or workgroup only,
//     "os:PATTERN" the OS product name or the OS version ("os:server",
//     "os:22631"); both take a substring or a glob, as names do.
//     "source:NAME" matches a host that the named source saw
//     ("source:ldap", see Source); it is the whole source name, or a
//     glob. Qualifiers are case-insensitive, as are patterns. A pattern
//     is one word: "os:windows os:server" asks for both words.
//   - Terms separated by spaces must all match (AND): "srv 10.0.0.0/8" is
//     hosts named like srv in 10/8.
//   - Groups separated by commas are alternatives (OR): "heron*, 10.1.2.3"
//     is hosts named heron-something, and the host at 10.1.2.3.
//
// An empty or blank expression matches every host. A term made only of
// digits, dots, '/', '-' and ':' with at least one dot or colon is read as
// an address term and must parse as one: "10.1.2" is an error, not a name;
// so is a term that starts with an address and a dash ("10.0.0.1-x").
// A word of letters followed by a colon, unless the whole term reads as an
// IPv6 address ("fe::1"), is a qualifier and must be a known one with a
// pattern: "user:bob" is an error (ErrUnknownQualifier), so is
// "os:" (ErrEmptyQualifier). Errors are *FilterError and match
// ErrBadFilter. ParseFilter does not check that a source name is one
// lanconnect ships: vendors add their own.
func ParseFilter(expr string) (Filter, error) {
	f := Filter{text: strings.TrimSpace(expr)}
	for group := range strings.SplitSeq(expr, ",") {
		var terms []term
		for _, w := range strings.Fields(group) {
			t, err := parseTerm(w)
			if err != nil {
				return Filter{}, err
			}
			terms = append(terms, t)
		}
		if len(terms) > 0 {
			f.groups = append(f.groups, terms)
		} else if strings.Contains(expr, ",") && strings.TrimSpace(expr) != "" {
			return Filter{}, &FilterError{Term: expr, Err: errors.New("empty alternative between commas")}
		}
	}
	return f, nil
}

// MustParseFilter is like ParseFilter but panics on error; for constants.
func MustParseFilter(expr string) Filter {
	f, err := ParseFilter(expr)
	if err != nil {
		panic(err)
	}
	return f
}

func looksLikeAddr(w string) bool {
	if i := strings.IndexByte(w, '-'); i > 0 {
		if _, err := netip.ParseAddr(w[:i]); err == nil {
			return true // a range, even if its end is garbage
		}
	}
	sep := false
	for _, c := range w {
		switch {
		case c == '.' || c == ':':
			sep = true
		case c >= '0' && c <= '9', c == '/', c == '-':
		case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			// hex digits count only in IPv6 forms, checked below
		default:
			return false
		}
	}
	if !sep {
		return false
	}
	if strings.Contains(w, ":") {
		return true
	}
	// Without a colon, hex letters make it a name ("dc1.ad" is a name).
	return !strings.ContainsAny(w, "abcdefABCDEF")
}

// qualifierOf returns the word before the first colon of w when that word
// is made of ASCII letters only, and "" otherwise.
func qualifierOf(w string) (q, value string) {
	i := strings.IndexByte(w, ':')
	if i <= 0 {
		return "", ""
	}
	for _, c := range w[:i] {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return "", ""
		}
	}
	return w[:i], w[i+1:]
}

func parseTerm(w string) (term, error) {
	q, value := qualifierOf(w)
	fld, known := qualifiers[strings.ToLower(q)]
	if q != "" && !known && !looksLikeAddr(w) {
		return term{}, &FilterError{Term: w, Err: fmt.Errorf("%w %q (known: domain:, os:, source:)", ErrUnknownQualifier, q+":")}
	}
	if known {
		if value == "" {
			return term{}, &FilterError{Term: w, Err: fmt.Errorf("%w: write %s:PATTERN, with no space after the colon", ErrEmptyQualifier, strings.ToLower(q))}
		}
		return parsePattern(w, value, fld)
	}
	if looksLikeAddr(w) {
		r, err := ParseAddrRange(w)
		if err != nil {
			return term{}, &FilterError{Term: w, Err: err}
		}
		return term{text: w, addrs: r}, nil
	}
	return parsePattern(w, w, fieldFree)
}

// parsePattern makes the term of a name, domain, OS or source pattern p,
// taken from the word w.
func parsePattern(w, p string, fld field) (term, error) {
	lp := strings.ToLower(p)
	if strings.ContainsAny(p, "*?[") {
		if _, err := path.Match(lp, ""); err != nil {
			return term{}, &FilterError{Term: w, Err: errors.New("malformed glob (unbalanced '[' or trailing '\\')")}
		}
		return term{field: fld, text: lp, glob: true}, nil
	}
	return term{field: fld, text: lp}, nil
}

// Match reports whether h passes the filter.
func (f Filter) Match(h Host) bool {
	if len(f.groups) == 0 {
		return true
	}
	for _, g := range f.groups {
		ok := true
		for _, t := range g {
			if !t.match(h) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (t term) match(h Host) bool {
	if t.addrs.From.IsValid() {
		for _, a := range h.Addrs {
			if t.addrs.Contains(a) {
				return true
			}
		}
		return false
	}
	switch t.field {
	case fieldDomain:
		return t.matchText(h.Domain)
	case fieldOS:
		return t.matchText(h.OS) || t.matchText(h.OSVersion)
	case fieldSource:
		for _, s := range h.Sources {
			if t.glob && t.matchText(string(s)) || !t.glob && strings.EqualFold(string(s), t.text) {
				return true
			}
		}
		return false
	}
	return t.matchText(h.Name) || t.matchText(h.DNSName) || t.matchText(h.Domain)
}

// matchText reports whether s, compared case-insensitively, contains the
// term's text, or matches it whole for a glob. An empty s never matches.
func (t term) matchText(s string) bool {
	if s == "" {
		return false
	}
	s = strings.ToLower(s)
	if t.glob {
		ok, _ := path.Match(t.text, s)
		return ok
	}
	return strings.Contains(s, t.text)
}

// MatchAddr reports whether an address alone could pass the filter: true
// when some group has only address terms that all contain a, or has a name
// term (which a later name could satisfy). Scanners may use it to skip
// addresses that cannot match; it is never narrower than Match.
func (f Filter) MatchAddr(a netip.Addr) bool {
	if len(f.groups) == 0 {
		return true
	}
	for _, g := range f.groups {
		ok := true
		for _, t := range g {
			if t.addrs.From.IsValid() && !t.addrs.Contains(a) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// String returns the expression the filter was parsed from, trimmed.
func (f Filter) String() string { return f.text }

// IsZero reports whether the filter matches everything.
func (f Filter) IsZero() bool { return len(f.groups) == 0 }
