package smbconn

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrIdentityMismatch is matched (errors.Is) by every *IdentityError: the
// server's NTLM CHALLENGE names another computer than the one expected,
// or names none, so no AUTHENTICATE was sent.
var ErrIdentityMismatch = errors.New("smbconn: server identity does not match the expected name")

// IdentityError says which name was expected and which names the server
// claimed in its NTLM CHALLENGE. It matches ErrIdentityMismatch.
type IdentityError struct {
	// Expected is the name the caller expected (Options.ExpectName).
	Expected string
	// NetBIOSComputer and DNSComputer are the server's MsvAvNbComputerName
	// and MsvAvDnsComputerName, empty when it did not send them.
	NetBIOSComputer, DNSComputer string
	// Unreadable is set when the CHALLENGE could not be parsed at all.
	Unreadable bool
}

// Error names the expected and the claimed identities.
func (e *IdentityError) Error() string {
	if e.Unreadable {
		return fmt.Sprintf("smbconn: expected %q, but the server's NTLM challenge is unreadable", e.Expected)
	}
	return fmt.Sprintf("smbconn: expected %q, but the server calls itself %s", e.Expected, e.Claimed())
}

// Claimed returns the names the server claimed, for messages: "NAME
// (dns.name)", one of them, or "nothing".
func (e *IdentityError) Claimed() string {
	switch {
	case e.NetBIOSComputer != "" && e.DNSComputer != "":
		return fmt.Sprintf("%q (%q)", e.NetBIOSComputer, e.DNSComputer)
	case e.NetBIOSComputer != "":
		return fmt.Sprintf("%q", e.NetBIOSComputer)
	case e.DNSComputer != "":
		return fmt.Sprintf("%q", e.DNSComputer)
	}
	return "nothing"
}

// Is matches ErrIdentityMismatch.
func (e *IdentityError) Is(target error) bool { return target == ErrIdentityMismatch }

// CheckIdentity reports whether the identity in a server's NTLM CHALLENGE
// (its NetBIOS and DNS computer names) matches expect, a computer name
// the caller resolved or was given. It returns nil on a match and an
// *IdentityError otherwise.
//
// The rules: names compare case-insensitively, without a trailing dot; a
// NetBIOS name matches the first label of a DNS name (cut to the 15
// characters a NetBIOS name keeps); a DNS name matches a DNS name whole.
// A match on either of the server's names is enough. An empty expect, or
// one that is an IP address literal, means nothing is expected and always
// matches. A challenge that names no computer at all does not match.
//
// It does not prove anything: the challenge is not authenticated, and a
// host that lies about its name passes. It stops a host that answers
// name queries for a name it does not own but tells the truth in NTLM
// (Responder's defaults, a misconfigured computer, a stale record).
func CheckIdentity(ci ChallengeInfo, expect string) error {
	if !ExpectsIdentity(expect) {
		return nil
	}
	e := normName(expect)
	nb, dns := normName(ci.NetBIOSComputer), normName(ci.DNSComputer)
	if nb != "" || dns != "" {
		eFirst := netbiosLabel(e)
		switch {
		case nb != "" && (nb == eFirst || nb == e):
			return nil
		case dns != "" && dns == e:
			return nil
		case dns != "" && !strings.Contains(e, ".") && netbiosLabel(dns) == eFirst:
			// A NetBIOS name against the server's DNS name.
			return nil
		}
	}
	return &IdentityError{Expected: expect, NetBIOSComputer: ci.NetBIOSComputer, DNSComputer: ci.DNSComputer}
}

// ExpectsIdentity reports whether name calls for an identity check: it is
// not empty and not an IP address literal (with or without brackets or a
// zone).
func ExpectsIdentity(name string) bool {
	name = strings.TrimSpace(name)
	if name == "" {
		return false
	}
	_, err := netip.ParseAddr(strings.Trim(name, "[]"))
	return err != nil
}

func normName(s string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}

// netbiosLabel returns the first DNS label of s, cut to 15 characters as
// Windows derives a NetBIOS name from a host name.
func netbiosLabel(s string) string {
	first, _, _ := strings.Cut(s, ".")
	if len(first) > 15 {
		first = first[:15]
	}
	return first
}
