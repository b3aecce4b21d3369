package discovery

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, addr(a))
	}
	return out
}

// TestMergeClaimAfterDirectory: the directory (DNS) places HERON at .5; a
// NetBIOS answer from .66 claims HERON too. The claimant stays a host of
// its own, flagged, and later findings follow their addresses.
func TestMergeClaimAfterDirectory(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nb, ldap := newFeed(nil), newFeed(nil)
	ups := Merge(ctx, Named("netbios", nb), Named("ldap", ldap))

	ldap.hosts <- Host{Name: "HERON", Domain: "LAB", DNSName: "heron.lab.example", Addrs: addrs("10.0.0.5"), Sources: []Source{SourceLDAP}}
	u := recv(t, ups)
	if u.Kind != HostNew || u.ID != 1 || !slices.Equal(u.Host.TrustedAddrs, addrs("10.0.0.5")) || u.Host.Conflict != "" {
		t.Fatalf("directory host %+v", u)
	}
	nb.hosts <- Host{Name: "HERON", Domain: "LAB", Addrs: addrs("10.0.0.66"), Sources: []Source{SourceNetBIOS}}
	u = recv(t, ups)
	if u.Kind != HostNew || u.ID != 2 || !slices.Equal(u.Host.Addrs, addrs("10.0.0.66")) || len(u.Host.TrustedAddrs) != 0 ||
		!strings.Contains(u.Host.Conflict, "HERON") || !strings.Contains(u.Host.Conflict, "10.0.0.5") {
		t.Fatalf("claimant %+v, want a new host flagged as a conflict", u)
	}
	// The real computer answers NetBIOS at its DNS address: it joins the
	// directory host, unflagged.
	nb.hosts <- Host{Name: "HERON", Domain: "LAB", Addrs: addrs("10.0.0.5"), OS: "Windows 11", Sources: []Source{SourceNetBIOS}}
	u = recv(t, ups)
	if u.Kind != HostChanged || u.ID != 1 || u.Host.OS != "Windows 11" || u.Host.Conflict != "" || !slices.Equal(u.Host.Addrs, addrs("10.0.0.5")) {
		t.Fatalf("real host's NetBIOS answer %+v", u)
	}
	// The claimant's SMB probe (same claim, same address) joins the
	// claimant, not the directory host.
	nb.hosts <- Host{Name: "HERON", Domain: "LAB", Addrs: addrs("10.0.0.66"), Dialect: "3.1.1", Sources: []Source{SourceSMB}}
	u = recv(t, ups)
	if u.Kind != HostChanged || u.ID != 2 || u.Host.Dialect != "3.1.1" || u.Host.Conflict == "" {
		t.Fatalf("claimant's probe %+v", u)
	}
	// A second claimant is kept apart from both.
	nb.hosts <- Host{Name: "heron", Domain: "lab", Addrs: addrs("10.0.0.67"), Sources: []Source{SourceNetBIOS}}
	if u = recv(t, ups); u.Kind != HostNew || u.ID != 3 || u.Host.Conflict == "" {
		t.Fatalf("second claimant %+v", u)
	}
	close(nb.hosts)
	close(ldap.hosts)
	for range ups {
	}
}

// TestMergeDirectoryAfterClaim: a NetBIOS claim comes first and is
// merged with the directory's record, which had no address yet (the
// directory looks addresses up after sending a host). When the
// directory's address arrives and disagrees, the directory's host is new
// and carries the name; the earlier host is flagged.
func TestMergeDirectoryAfterClaim(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nb, ldap := newFeed(nil), newFeed(nil)
	ups := Merge(ctx, Named("netbios", nb), Named("ldap", ldap))

	nb.hosts <- Host{Name: "HERON", Domain: "LAB", Addrs: addrs("10.0.0.66"), Sources: []Source{SourceNetBIOS}}
	if u := recv(t, ups); u.Kind != HostNew || u.ID != 1 {
		t.Fatalf("claim %+v", u)
	}
	ldap.hosts <- Host{Name: "HERON", Domain: "LAB", DNSName: "heron.lab.example", Sources: []Source{SourceLDAP}}
	if u := recv(t, ups); u.Kind != HostChanged || u.ID != 1 || u.Host.DNSName != "heron.lab.example" {
		t.Fatalf("directory without address %+v", u)
	}
	ldap.hosts <- Host{Name: "HERON", Domain: "LAB", DNSName: "heron.lab.example", Addrs: addrs("10.0.0.5"), Sources: []Source{SourceLDAP}}
	got := map[HostID]Update{}
	for range 2 {
		u := recv(t, ups)
		got[u.ID] = u
	}
	if u := got[1]; u.Kind != HostChanged || !strings.Contains(u.Host.Conflict, "10.0.0.5") || slices.Contains(u.Host.Addrs, addr("10.0.0.5")) {
		t.Fatalf("earlier host %+v, want it flagged and without the DNS address", u)
	}
	if u := got[2]; u.Kind != HostNew || u.Host.Conflict != "" || !slices.Equal(u.Host.TrustedAddrs, addrs("10.0.0.5")) || !slices.Equal(u.Host.Addrs, addrs("10.0.0.5")) {
		t.Fatalf("directory host %+v", u)
	}
	// The name now belongs to the directory's host: the real computer's
	// NetBIOS answer joins it.
	nb.hosts <- Host{Name: "HERON", Domain: "LAB", Addrs: addrs("10.0.0.5"), OS: "Windows 11", Sources: []Source{SourceNetBIOS}}
	if u := recv(t, ups); u.ID != 2 || u.Host.OS != "Windows 11" {
		t.Fatalf("real host's answer %+v", u)
	}
	close(nb.hosts)
	close(ldap.hosts)
	for range ups {
	}
}

// TestMergeAgreeingSourcesMerge: DNS and NetBIOS agree, or both are
// claims: one host, no conflict (a computer may have several addresses).
func TestMergeAgreeingSourcesMerge(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nb, ldap := newFeed(nil), newFeed(nil)
	ups := Merge(ctx, Named("netbios", nb), Named("ldap", ldap))
	nb.hosts <- Host{Name: "OWL", Domain: "LAB", Addrs: addrs("10.0.0.9"), Sources: []Source{SourceNetBIOS}}
	recv(t, ups)
	nb.hosts <- Host{Name: "OWL", Domain: "LAB", Addrs: addrs("10.0.1.9"), Sources: []Source{SourceNetBIOS}}
	if u := recv(t, ups); u.ID != 1 || !slices.Equal(u.Host.Addrs, addrs("10.0.0.9", "10.0.1.9")) || u.Host.Conflict != "" {
		t.Fatalf("two claims %+v", u)
	}
	ldap.hosts <- Host{Name: "OWL", Domain: "LAB", Addrs: addrs("10.0.1.9"), Sources: []Source{SourceDNS}}
	if u := recv(t, ups); u.ID != 1 || !slices.Equal(u.Host.TrustedAddrs, addrs("10.0.1.9")) || u.Host.Conflict != "" {
		t.Fatalf("DNS agrees %+v", u)
	}
	close(nb.hosts)
	close(ldap.hosts)
	for range ups {
	}
}
