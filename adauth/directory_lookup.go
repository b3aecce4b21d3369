package adauth

import (
	"context"
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

// DirectoryEntry is one directory object that Directory.SearchOne read.
type DirectoryEntry struct {
	DN string
	// Attributes maps the attribute names as the DC spelled them to
	// their raw values.
	Attributes map[string][][]byte
}

// SearchOne reads the one object that matches filter at or below base
// (a subtree search), or base itself when filter is empty, with attrs. An
// empty base means the domain (BaseDN, else the DC's
// defaultNamingContext). It connects and binds as Discover does (TLS,
// Credentials, Bind) on a connection of its own, closed before it
// returns. It returns (nil, nil) when nothing matches, and an error when
// more than one object does.
//
// It does not page, follow referrals or keep the connection; values are
// returned as the DC sent them and never logged.
func (d *Directory) SearchOne(ctx context.Context, base, filter string, attrs []string) (*DirectoryEntry, error) {
	s, err := d.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer s.conn.Close()
	if base == "" {
		bases, err := d.searchBases(s.dse)
		if err != nil {
			return nil, err
		}
		base = bases[0]
	}
	scope := ldap.ScopeWholeSubtree
	if filter == "" {
		scope, filter = ldap.ScopeBaseObject, "(objectClass=*)"
	}
	var found []*ldap.Entry
	req := ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 2, int(d.timeout().Seconds()), false, filter, attrs, nil)
	sctx, cancel := context.WithCancel(ctx)
	resp := s.conn.SearchAsync(sctx, req, 4)
	for resp.Next() {
		if e := resp.Entry(); e != nil {
			found = append(found, e)
		}
	}
	cancel()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err := resp.Err(); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil, nil
		}
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			return nil, searchErr(s.server, base, err)
		}
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, opError(OpSearch, s.server, fmt.Sprintf("more than one object below %s matches %s", base, filter), nil, nil)
	}
	_ = s.conn.Unbind()
	e := &DirectoryEntry{DN: found[0].DN, Attributes: map[string][][]byte{}}
	for _, a := range found[0].Attributes {
		e.Attributes[a.Name] = a.ByteValues
	}
	return e, nil
}
