package discovery

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"strings"
)

// ErrBadRange matches every error of ParseAddrRange (through
// *AddrRangeError).
var ErrBadRange = errors.New("bad address, CIDR or range")

// AddrRangeError reports text that is not an address, CIDR or range.
type AddrRangeError struct {
	Input  string
	Reason string
}

// Error quotes the input and says why it is not an address, CIDR or range.
func (e *AddrRangeError) Error() string {
	return fmt.Sprintf("%q is not an IP address, CIDR or range: %s", e.Input, e.Reason)
}

// Is makes errors.Is(err, ErrBadRange) true.
func (e *AddrRangeError) Is(target error) bool { return target == ErrBadRange }

// AddrRange is an inclusive range of addresses of one family. The zero
// AddrRange is invalid and contains nothing.
type AddrRange struct {
	From, To netip.Addr
}

// ParseAddrRange parses a single address ("10.0.0.5"), a CIDR prefix
// ("10.0.0.0/24", host bits ignored, so "10.0.0.9/24" is the same /24) or
// a range of two addresses of the same family ("10.0.0.5-10.0.0.40", the
// second not below the first). IPv4-mapped IPv6 addresses are unmapped;
// zones are refused.
func ParseAddrRange(s string) (AddrRange, error) {
	s = strings.TrimSpace(s)
	bad := func(reason string) (AddrRange, error) {
		return AddrRange{}, &AddrRangeError{Input: s, Reason: reason}
	}
	if s == "" {
		return bad("empty")
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		from, err1 := parseAddr(s[:i])
		to, err2 := parseAddr(s[i+1:])
		switch {
		case err1 != nil:
			return bad("start: " + err1.Error())
		case err2 != nil:
			return bad("end: " + err2.Error())
		case from.Is4() != to.Is4():
			return bad("start and end are of different families")
		case to.Less(from):
			return bad("end is below start")
		}
		return AddrRange{from, to}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return bad(strings.TrimPrefix(err.Error(), "netip.ParsePrefix("+`"`+s+`"`+"): "))
		}
		if p.Addr().Zone() != "" {
			return bad("zones are not supported")
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		return AddrRange{p.Addr(), lastAddr(p)}, nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return bad(err.Error())
	}
	return AddrRange{a, a}, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		// Drop the "ParseAddr(...)" prefix: the caller quotes the input.
		msg := err.Error()
		if i := strings.LastIndex(msg, "): "); i >= 0 {
			msg = msg[i+3:]
		}
		return a, errors.New(msg)
	}
	if a.Zone() != "" {
		return a, errors.New("zones are not supported")
	}
	return a.Unmap(), nil
}

// lastAddr returns the highest address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := range 8 {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Contains reports whether a is in r. An IPv4-mapped a is unmapped first.
func (r AddrRange) Contains(a netip.Addr) bool {
	if !r.From.IsValid() || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	return a.Is4() == r.From.Is4() && !a.Less(r.From) && !r.To.Less(a)
}

// All yields the addresses of r in ascending order, one at a time: a /16
// costs no memory up front.
func (r AddrRange) All() iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		if !r.From.IsValid() || r.To.Less(r.From) {
			return
		}
		for a := r.From; ; a = a.Next() {
			if !yield(a) || a == r.To {
				return
			}
		}
	}
}

// Size returns the number of addresses in r, saturating at 1<<62.
func (r AddrRange) Size() uint64 {
	if !r.From.IsValid() || r.To.Less(r.From) {
		return 0
	}
	f, t := r.From.As16(), r.To.As16()
	var n uint64
	for i := range 16 {
		if n >= 1<<54 {
			return 1 << 62
		}
		n = n<<8 + uint64(t[i]) - uint64(f[i])
	}
	return n + 1
}

// String returns "A" for a single address and "A-B" otherwise.
func (r AddrRange) String() string {
	if r.From == r.To {
		return r.From.String()
	}
	return r.From.String() + "-" + r.To.String()
}
