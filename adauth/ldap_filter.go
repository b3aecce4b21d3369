package adauth

import (
	"strings"
)

// EscapeFilterValue escapes s for use as an assertion value inside an LDAP
// search filter (RFC 4515 section 3): the characters '*', '(', ')', '\' and
// NUL become \2a, \28, \29, \5c and \00, and so do every other control
// character and every byte outside ASCII, so the result is plain printable
// ASCII whatever s holds. An escaped value can never change the structure of
// the filter it is placed in. It does not add wildcards.
func EscapeFilterValue(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '*' || c == '(' || c == ')' || c == '\\' {
			const hex = "0123456789abcdef"
			b.WriteByte('\\')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// The OID of the LDAP_MATCHING_RULE_BIT_AND extensible match (MS-ADTS
// 3.1.1.3.4.4.2), and the userAccountControl bit ACCOUNTDISABLE.
const (
	matchBitAnd    = "1.2.840.113556.1.4.803"
	uacDisabled    = 0x2
	uacServerTrust = 0x2000 // SERVER_TRUST_ACCOUNT: a domain controller
)

// computerFilter returns the LDAP filter for computer objects: enabled ones
// only unless includeDisabled, and when name is not empty, only those whose
// name matches it.
//
// name is a case-insensitive pattern: without '*' it matches names that
// contain it; with '*' it is a glob in which '*' matches any run of
// characters and the pattern must match the whole name. Every other
// character is literal and escaped (EscapeFilterValue), so no input can
// change the filter's structure. A pattern of only '*' matches every name.
func computerFilter(name string, includeDisabled bool) string {
	var b strings.Builder
	b.WriteString("(&(objectClass=computer)")
	if !includeDisabled {
		b.WriteString("(!(userAccountControl:" + matchBitAnd + ":=2))")
	}
	if name != "" {
		b.WriteString(nameAssertion("name", name))
	}
	b.WriteString(")")
	return b.String()
}

// nameAssertion returns a substring (or presence) filter item for attr that
// implements the pattern rules of computerFilter.
func nameAssertion(attr, pattern string) string {
	var parts []string
	if strings.Contains(pattern, "*") {
		parts = strings.Split(pattern, "*")
	} else {
		parts = []string{"", pattern, ""}
	}
	// parts[0] is the initial, parts[len-1] the final, the rest "any".
	// Empty "any" parts come from runs of '*' and are dropped: "a**b" is
	// "a*b". Initial and final may be empty (no anchor).
	var b strings.Builder
	b.WriteString("(" + attr + "=")
	b.WriteString(EscapeFilterValue(parts[0]))
	for _, p := range parts[1 : len(parts)-1] {
		if p == "" {
			continue
		}
		b.WriteString("*")
		b.WriteString(EscapeFilterValue(p))
	}
	if len(parts) > 1 {
		b.WriteString("*")
	}
	b.WriteString(EscapeFilterValue(parts[len(parts)-1]))
	b.WriteString(")")
	return b.String()
}
