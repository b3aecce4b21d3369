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

// FilterError reports a filter term that cannot be parsed.
type FilterError struct {
	Term string // the offending term
	Err  error  // why; wraps ErrBadRange for address terms
}

// Error quotes the term and says what is wrong with it.
func (e *FilterError) Error() string {
	return fmt.Sprintf("bad filter term %q: %v", e.Term, e.Err)
}

// Unwrap returns the cause.
func (e *FilterError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBadFilter) true.
func (e *FilterError) Is(target error) bool { return target == ErrBadFilter }

// Filter selects hosts by name or address. Build one with ParseFilter.
//
// The zero Filter matches every host. A Filter is immutable and safe for
// concurrent use.
type Filter struct {
	text   string
	groups [][]term // OR of groups, each an AND of terms
}

type term struct {
	text  string // lower-cased name pattern
	glob  bool
	addrs AddrRange // valid From: an address term
}

// ParseFilter parses a filter expression. The syntax is what a technician
// types in a search box:
//
//   - A term is an IP address ("10.1.2.3", exact match), a CIDR
//     ("10.1.2.0/24"), a range ("10.1.2.5-10.1.2.40"), or a name pattern.
//     Address terms match any of a host's addresses.
//   - A name pattern without wildcards matches, case-insensitively, a
//     substring of the NetBIOS name or the DNS name ("srv"). With '*', '?'
//     or '[...]' it is a glob that must match the whole NetBIOS or DNS name
//     ("heron*", "pc-0?").
//   - Terms separated by spaces must all match (AND): "srv 10.0.0.0/8" is
//     hosts named like srv in 10/8.
//   - Groups separated by commas are alternatives (OR): "heron*, 10.1.2.3"
//     is hosts named heron-something, and the host at 10.1.2.3.
//
// An empty or blank expression matches every host. A term made only of
// digits, dots, '/', '-' and ':' with at least one dot or colon is read as
// an address term and must parse as one: "10.1.2" is an error, not a name;
// so is a term that starts with an address and a dash ("10.0.0.1-x").
// Errors are *FilterError and match ErrBadFilter.
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

func parseTerm(w string) (term, error) {
	if looksLikeAddr(w) {
		r, err := ParseAddrRange(w)
		if err != nil {
			return term{}, &FilterError{Term: w, Err: err}
		}
		return term{text: w, addrs: r}, nil
	}
	lw := strings.ToLower(w)
	if strings.ContainsAny(w, "*?[") {
		if _, err := path.Match(lw, ""); err != nil {
			return term{}, &FilterError{Term: w, Err: errors.New("malformed glob (unbalanced '[' or trailing '\\')")}
		}
		return term{text: lw, glob: true}, nil
	}
	return term{text: lw}, nil
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
	for _, n := range [2]string{h.Name, h.DNSName} {
		if n == "" {
			continue
		}
		n = strings.ToLower(n)
		if t.glob {
			if ok, _ := path.Match(t.text, n); ok {
				return true
			}
		} else if strings.Contains(n, t.text) {
			return true
		}
	}
	return false
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
