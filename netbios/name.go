package netbios

import (
	"fmt"
	"strings"
)

// Well-known name suffixes (the 16th byte of a NetBIOS name). Their meaning
// is a Microsoft convention on top of RFC 1001: the name service itself
// treats the suffix as an ordinary byte.
const (
	SuffixWorkstation         byte = 0x00 // unique: workstation service; group: domain or workgroup member
	SuffixMessenger           byte = 0x03 // unique: messenger service (computer or logged-on user)
	SuffixFileServer          byte = 0x20 // unique: server service (file sharing)
	SuffixDomainMasterBrowser byte = 0x1B // unique: domain master browser
	SuffixDomainControllers   byte = 0x1C // group: domain controllers of a domain
	SuffixMasterBrowser       byte = 0x1D // unique: local master browser of a workgroup
	SuffixBrowserElection     byte = 0x1E // group: browser election service
	SuffixBrowseGroup         byte = 0x01 // with "\x01\x02__MSBROWSE__\x02": master browsers
)

// MSBrowse is the 15-byte base of the name that local master browsers
// register as a group with suffix 0x01 ("\x01\x02__MSBROWSE__\x02<01>").
const MSBrowse = "\x01\x02__MSBROWSE__\x02"

// maxNameLen is the longest encoded name on the wire (RFC 1035 limit, which
// RFC 1002 inherits): the length bytes, the labels and the final zero.
const maxNameLen = 255

// Name is a NetBIOS name: 15 bytes of name padded with spaces (or with
// zeros for the wildcard "*"), a suffix byte, and an optional scope ID.
//
// The zero Name is not a valid name to send; build names with [NewName] or
// [WildcardName]. Names decoded from packets keep their bytes as sent: they
// are not upper-cased or otherwise normalised.
type Name struct {
	// Raw is the decoded 16-byte name: 15 bytes of padded name and the
	// suffix byte.
	Raw [16]byte
	// Scope is the NetBIOS scope ID in dotted form, empty for none.
	Scope string
}

// NameError reports a name that cannot be built or encoded.
type NameError struct {
	Name   string // the offending name or scope, quoted in Error
	Reason string
}

// Error returns the name, quoted, and the reason.
func (e *NameError) Error() string {
	return fmt.Sprintf("netbios: bad name %q: %s", e.Name, e.Reason)
}

// Is makes errors.Is(err, ErrBadName) true for every *NameError.
func (e *NameError) Is(target error) bool { return target == ErrBadName }

// NewName builds a name from its base (at most 15 bytes) and suffix. ASCII
// letters are upper-cased, as Windows and Samba do; other bytes are kept.
// The base is padded with spaces, except the wildcard "*", which is padded
// with zeros as RFC 1002 requires. NewName does not accept a scope: set
// Scope on the result (validated when the name is encoded).
func NewName(base string, suffix byte) (Name, error) {
	var n Name
	if base == "" {
		return n, &NameError{Name: base, Reason: "empty"}
	}
	if len(base) > 15 {
		return n, &NameError{Name: base, Reason: "longer than 15 bytes"}
	}
	pad := byte(' ')
	if base == "*" {
		pad = 0
	}
	for i := range 15 {
		if i < len(base) {
			c := base[i]
			if c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			n.Raw[i] = c
		} else {
			n.Raw[i] = pad
		}
	}
	n.Raw[15] = suffix
	return n, nil
}

// MustName is like NewName but panics on error. It is meant for constants
// in programs and tests, never for names that come from input.
func MustName(base string, suffix byte) Name {
	n, err := NewName(base, suffix)
	if err != nil {
		panic(err)
	}
	return n
}

// WildcardName returns "*<00>", the name a node status request asks for
// when the target's names are not known.
func WildcardName() Name { return MustName("*", 0) }

// Base returns the name without its suffix and without trailing padding
// (spaces or zeros).
func (n Name) Base() string {
	return strings.TrimRight(string(n.Raw[:15]), " \x00")
}

// Suffix returns the 16th byte of the name.
func (n Name) Suffix() byte { return n.Raw[15] }

// String returns the name in the usual "BASE<xx>" notation, with the scope
// appended after a dot when there is one. Bytes that are not printable are
// shown as \xNN.
func (n Name) String() string {
	var b strings.Builder
	for _, c := range []byte(n.Base()) {
		if c < 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, `\x%02x`, c)
		} else {
			b.WriteByte(c)
		}
	}
	fmt.Fprintf(&b, "<%02x>", n.Raw[15])
	if n.Scope != "" {
		b.WriteByte('.')
		b.WriteString(n.Scope)
	}
	return b.String()
}

// EqualFold reports whether n and m are the same name, ignoring ASCII case
// in the base and the scope.
func (n Name) EqualFold(m Name) bool {
	if n.Raw[15] != m.Raw[15] || !strings.EqualFold(n.Scope, m.Scope) {
		return false
	}
	return strings.EqualFold(string(n.Raw[:15]), string(m.Raw[:15]))
}

// encodedLen returns the wire length of the name, or an error if the scope
// is not a valid sequence of labels.
func (n Name) encodedLen() (int, error) {
	l := 1 + 32 + 1
	if n.Scope == "" {
		return l, nil
	}
	for label := range strings.SplitSeq(n.Scope, ".") {
		if len(label) == 0 || len(label) > 63 {
			return 0, &NameError{Name: n.Scope, Reason: "scope label empty or longer than 63 bytes"}
		}
		l += 1 + len(label)
	}
	if l > maxNameLen {
		return 0, &NameError{Name: n.Scope, Reason: "encoded name longer than 255 bytes"}
	}
	return l, nil
}

// MarshalBinary returns the wire form of n: its first-level encoding (RFC
// 1001 section 14.1) with the scope labels and the final zero byte, as
// the name service and the NetBIOS session service (RFC 1002 section
// 4.3.2, the called and calling names of a SESSION REQUEST) carry it. It
// fails with a *NameError when the scope cannot be encoded. It does not
// upper-case or otherwise change the name: build it with NewName.
func (n Name) MarshalBinary() ([]byte, error) { return appendName(nil, n) }

// appendName appends the first-level encoding of n (RFC 1001 section 14.1):
// each byte becomes two letters 'A'+nibble, in a 32-byte label, followed by
// the scope labels and a zero length byte.
func appendName(b []byte, n Name) ([]byte, error) {
	if _, err := n.encodedLen(); err != nil {
		return b, err
	}
	b = append(b, 32)
	for _, c := range n.Raw {
		b = append(b, 'A'+c>>4, 'A'+c&0x0f)
	}
	if n.Scope != "" {
		for label := range strings.SplitSeq(n.Scope, ".") {
			b = append(b, byte(len(label)))
			b = append(b, label...)
		}
	}
	return append(b, 0), nil
}

// decodeName decodes the name at msg[off:]. When allowPtr is set, the name
// may be a single label string pointer (RFC 1002 section 4.1) to a full
// name that starts strictly before off; the target itself may not be a
// pointer, so pointers can neither loop nor chain. It returns the name and
// the offset just past it in msg.
func decodeName(msg []byte, off int, allowPtr bool) (Name, int, error) {
	var n Name
	if off >= len(msg) {
		return n, off, ErrTruncated
	}
	l := msg[off]
	switch l & 0xC0 {
	case 0xC0:
		if !allowPtr {
			return n, off, ErrBadPointer
		}
		if off+2 > len(msg) {
			return n, off, ErrTruncated
		}
		target := int(l&0x3F)<<8 | int(msg[off+1])
		if target < headerLen || target >= off {
			return n, off, ErrBadPointer
		}
		n, _, err := decodeName(msg, target, false)
		if err != nil {
			// The pointer leads to garbage: blame the pointer.
			if err == ErrTruncated {
				err = ErrBadPointer
			}
			return n, off, err
		}
		return n, off + 2, nil
	case 0x40, 0x80:
		return n, off, ErrBadLabel
	}
	if l != 32 {
		return n, off, ErrBadName
	}
	p := off + 1
	if p+32 > len(msg) {
		return n, off, ErrTruncated
	}
	for i := range 16 {
		hi, lo := msg[p+2*i]-'A', msg[p+2*i+1]-'A'
		if hi > 15 || lo > 15 {
			return n, off, ErrBadName
		}
		n.Raw[i] = hi<<4 | lo
	}
	p += 32
	// Scope labels, if any, up to the zero length byte.
	start := p
	total := 1 + 32
	for {
		if p >= len(msg) {
			return n, off, ErrTruncated
		}
		l := int(msg[p])
		if l == 0 {
			p++
			break
		}
		if l&0xC0 != 0 {
			// No pointers inside a name, and 0x40/0x80 are reserved.
			return n, off, ErrBadLabel
		}
		total += 1 + l
		if total+1 > maxNameLen {
			return n, off, ErrNameTooLong
		}
		if p+1+l > len(msg) {
			return n, off, ErrTruncated
		}
		for _, c := range msg[p+1 : p+1+l] {
			if c == '.' {
				return n, off, ErrBadLabel
			}
		}
		p += 1 + l
	}
	if p-1 > start {
		// Build the dotted scope only when there is one: the common
		// case allocates nothing.
		var b strings.Builder
		b.Grow(p - 1 - start)
		for q := start; q < p-1; {
			l := int(msg[q])
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.Write(msg[q+1 : q+1+l])
			q += 1 + l
		}
		n.Scope = b.String()
	}
	return n, p, nil
}
