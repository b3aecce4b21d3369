package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
)

var (
	// ErrNameConflict: more than one address answered for the host's
	// name, or the host is flagged with a discovery.Host Conflict. The
	// *Error's cause is a *NameConflictError.
	ErrNameConflict = errors.New("session: more than one computer answers for the name")
	// ErrIdentityMismatch is adauth.ErrIdentityMismatch: the computer
	// answered under another name, and no AUTHENTICATE was sent.
	ErrIdentityMismatch = adauth.ErrIdentityMismatch
)

// Resolution is what a Resolver found for a name.
type Resolution struct {
	// Addrs are the distinct addresses that answered, in arrival order.
	// More than one means a conflict: Connect sends nothing.
	Addrs []netip.Addr
	// Source is where they came from: discovery.SourceDNS or
	// discovery.SourceNetBIOS, for example.
	Source discovery.Source
}

// Resolver finds the addresses of a computer name for Connect. Resolve
// returns every distinct address that answered, with no error, even when
// there are several (Connect decides that several are a conflict); it
// returns an empty Resolution (or an error) when nothing answered. It must
// honour ctx. Package standard provides one that asks DNS first and makes
// a NetBIOS broadcast query only when DNS has no answer.
type Resolver interface {
	Resolve(ctx context.Context, name string) (Resolution, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, name string) (Resolution, error)

// Resolve calls f(ctx, name).
func (f ResolverFunc) Resolve(ctx context.Context, name string) (Resolution, error) {
	return f(ctx, name)
}

// NameConflictError is the cause of an ErrNameConflict failure: the name,
// and the addresses that answered for it (or, for a host that discovery
// flagged, its own addresses and the flag's reason).
type NameConflictError struct {
	Name   string
	Addrs  []netip.Addr
	Source discovery.Source
	// Reason is discovery.Host.Conflict for a flagged host, else empty.
	Reason string
}

// Error names the name and lists the addresses.
func (e *NameConflictError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("%s at %s %s", e.Name, joinAddrs(e.Addrs), e.Reason)
	}
	return fmt.Sprintf("%d addresses answer for %s (%s): %s", len(e.Addrs), e.Name, e.Source, joinAddrs(e.Addrs))
}

// Is matches ErrNameConflict.
func (e *NameConflictError) Is(target error) bool { return target == ErrNameConflict }

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// isAddrLiteral reports whether s is an IP address literal.
func isAddrLiteral(s string) bool {
	_, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return err == nil
}

// expectedName is the name whose owner the session means to reach: the
// host's DNS name, else its NetBIOS name, unless that is an address
// literal. The authenticator compares it with the computer's NTLM
// identity.
func expectedName(h discovery.Host) string {
	for _, n := range []string{h.DNSName, h.Name} {
		if n = strings.TrimSpace(n); n != "" && !isAddrLiteral(n) {
			return n
		}
	}
	return ""
}

// resolve finds the session's address when the host has a name but no
// address, with Config.Resolver; more than one answer is a conflict. A
// host that discovery flagged as a conflict is refused before anything is
// sent. It sets s.addr.
func (s *Session) resolve(ctx context.Context) error {
	h := s.host
	if h.Conflict != "" {
		return &Error{Name: s.name, Step: StepAuthenticate, Kind: ErrNameConflict,
			Err: &NameConflictError{Name: s.name, Addrs: slices.Clone(h.Addrs), Reason: h.Conflict},
			Diagnosis: diag.Diagnosis{Code: diag.NameConflict,
				Summary: fmt.Sprintf("The host at %s %s, so it may be impersonating that computer. Nothing was sent to it.", joinAddrs(h.Addrs), h.Conflict),
				Fix:     "Connect to the computer the directory or DNS names, or, after checking who this host is, connect by its IP address."}}
	}
	r := s.c.cfg.Resolver
	if r == nil || len(h.Addrs) > 0 || s.addr == "" || isAddrLiteral(s.addr) {
		return nil
	}
	name := s.addr
	res, err := r.Resolve(ctx, name)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	addrs := uniqueAddrs(res.Addrs)
	switch {
	case len(addrs) == 0:
		d := diag.Diagnosis{Code: diag.NameNotResolved, Summary: "No computer answered for the name " + name + " (DNS, then NetBIOS).",
			Fix: "Check the name, or use the computer's IP address."}
		if err == nil {
			err = fmt.Errorf("%s: no address", name)
		}
		return &Error{Name: s.name, Step: StepAuthenticate, Kind: ErrNoAddress, Err: err, Diagnosis: d}
	case len(addrs) > 1:
		return &Error{Name: s.name, Step: StepAuthenticate, Kind: ErrNameConflict,
			Err: &NameConflictError{Name: name, Addrs: addrs, Source: res.Source},
			Diagnosis: diag.Diagnosis{Code: diag.NameConflict,
				Summary: fmt.Sprintf("More than one computer answers for the name %s (%s): %s. Another host may be impersonating it, so nothing was sent to any of them.", name, res.Source, joinAddrs(addrs)),
				Fix:     "Find out which address belongs to the computer (DNS, the directory, its console), remove the rogue or stale one, or connect by that IP address."}}
	}
	s.log.Debug("resolved", "name", name, "addr", addrs[0], "source", res.Source)
	s.setAddr(addrs[0].String())
	s.addrs = []string{addrs[0].String()}
	return nil
}

func uniqueAddrs(as []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		if a = a.Unmap(); a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
