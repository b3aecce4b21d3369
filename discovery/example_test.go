package discovery_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/lanconnect/lanconnect/discovery"
)

// Parse what a technician typed in the filter box and match hosts with it.
// A bare word matches the NetBIOS name, the DNS name or the domain; the
// qualifiers domain:, os: and source: match one field; space is AND and
// comma is OR.
func ExampleParseFilter() {
	hosts := []discovery.Host{
		{Name: "HERON-01", Domain: "LAB", OS: "Windows 11 Pro", Sources: []discovery.Source{discovery.SourceNetBIOS, discovery.SourceLDAP},
			Addrs: []netip.Addr{netip.MustParseAddr("10.1.2.3")}},
		{Name: "FILESRV", Domain: "WORKGROUP", OS: "Windows Server 2019 Standard", Sources: []discovery.Source{discovery.SourceNetBIOS},
			Addrs: []netip.Addr{netip.MustParseAddr("10.1.2.50")}},
		{Name: "OWL", DNSName: "owl.lab.example", Sources: []discovery.Source{discovery.SourceDNS},
			Addrs: []netip.Addr{netip.MustParseAddr("192.168.7.7")}},
	}
	for _, expr := range []string{
		"heron*",
		"lab",
		"domain:lab",
		"os:server",
		"10.1.2.0/24 source:ldap",
		"filesrv, 192.168.0.0/16",
	} {
		f, err := discovery.ParseFilter(expr)
		if err != nil {
			fmt.Println(err)
			continue
		}
		var names []string
		for _, h := range hosts {
			if f.Match(h) {
				names = append(names, h.Name)
			}
		}
		fmt.Printf("%-26q %v\n", f, names)
	}

	// Bad input is an error that says which term is wrong. Every error
	// matches ErrBadFilter; a wrong qualifier also matches
	// ErrUnknownQualifier or ErrEmptyQualifier.
	for _, expr := range []string{"heron[", "user:bob", "os: server"} {
		_, err := discovery.ParseFilter(expr)
		fmt.Println(err)
		fmt.Println(errors.Is(err, discovery.ErrBadFilter), errors.Is(err, discovery.ErrUnknownQualifier), errors.Is(err, discovery.ErrEmptyQualifier))
	}
	// Output:
	// "heron*"                   [HERON-01]
	// "lab"                      [HERON-01 OWL]
	// "domain:lab"               [HERON-01]
	// "os:server"                [FILESRV]
	// "10.1.2.0/24 source:ldap"  [HERON-01]
	// "filesrv, 192.168.0.0/16"  [FILESRV OWL]
	// bad filter term "heron[": malformed glob (unbalanced '[' or trailing '\')
	// true false false
	// bad filter term "user:bob": unknown qualifier "user:" (known: domain:, os:, source:)
	// true true false
	// bad filter term "os:": qualifier without a value: write os:PATTERN, with no space after the colon
	// true false true
}

// Merge two sources that see the same computer: the NetBIOS scan knows its
// name, domain and OS, and DNS knows its DNS name. They share an address,
// so they become one host with the facts of both. The updates of the two
// sources interleave in any order, so the example keeps the latest state
// of each host by ID and prints the hosts sorted by name at the end.
func ExampleMerge() {
	ip := netip.MustParseAddr
	nbns := discovery.DiscovererFunc(func(ctx context.Context, out chan<- discovery.Host) error {
		for _, h := range []discovery.Host{
			{Name: "HERON-01", Domain: "LAB", OS: "Windows 11 Pro", Addrs: []netip.Addr{ip("10.1.2.3")},
				Roles: []discovery.Role{discovery.RoleWorkstation}, Sources: []discovery.Source{discovery.SourceNetBIOS}},
			{Name: "FILESRV", Domain: "LAB", Addrs: []netip.Addr{ip("10.1.2.50")},
				Roles: []discovery.Role{discovery.RoleFileServer}, Sources: []discovery.Source{discovery.SourceNetBIOS}},
		} {
			select {
			case out <- h:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	dns := discovery.DiscovererFunc(func(ctx context.Context, out chan<- discovery.Host) error {
		h := discovery.Host{DNSName: "heron-01.lab.example", Addrs: []netip.Addr{ip("10.1.2.3")}, Sources: []discovery.Source{discovery.SourceDNS}}
		select {
		case out <- h:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hosts := map[discovery.HostID]discovery.Host{}
	var done []string
	for u := range discovery.Merge(ctx, discovery.Named("netbios", nbns), discovery.Named("dns", dns)) {
		switch u.Kind {
		case discovery.HostNew, discovery.HostChanged:
			hosts[u.ID] = u.Host
		case discovery.HostRemoved: // merged into u.MergedInto
			delete(hosts, u.ID)
		case discovery.SourceDone:
			done = append(done, fmt.Sprintf("%s (err %v)", u.Source, u.Err))
		}
	}
	byName := func(a, b discovery.Host) int { return cmp.Compare(a.Name, b.Name) }
	for _, h := range slices.SortedFunc(maps.Values(hosts), byName) {
		slices.Sort(h.Sources) // in the order the sources answered: sort for the example
		fmt.Printf("%s %q %s %v trusted %v roles %v sources %v\n", h.Name, h.DNSName, h.Domain, h.Addrs, h.TrustedAddrs, h.Roles, h.Sources)
	}
	slices.Sort(done)
	fmt.Println("finished:", done)
	// Output:
	// FILESRV "" LAB [10.1.2.50] trusted [] roles [file-server] sources [netbios]
	// HERON-01 "heron-01.lab.example" LAB [10.1.2.3] trusted [10.1.2.3] roles [workstation] sources [dns netbios]
	// finished: [dns (err <nil>) netbios (err <nil>)]
}

// A live view is what a console's host list shows: Show and Hide events
// for the hosts of a Merge stream that match the filter, re-evaluated when
// the technician changes it. Here the stream is a channel the example
// feeds by hand.
func ExampleNewLiveView() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := make(chan discovery.Update)
	v := discovery.NewLiveView(ctx, updates, discovery.MustParseFilter("heron*"))
	show := func(e discovery.ViewEvent) {
		switch e.Kind {
		case discovery.Show:
			fmt.Printf("show %d %s", e.ID, e.Host.Name)
			if e.Host.OS != "" {
				fmt.Printf(" (%s)", e.Host.OS)
			}
			fmt.Println()
		case discovery.Hide:
			fmt.Printf("hide %d %s\n", e.ID, e.Host.Name)
		case discovery.SourceFinished:
			fmt.Printf("source %s finished\n", e.Source)
		case discovery.Complete:
			fmt.Println("complete")
		}
	}

	updates <- discovery.Update{Kind: discovery.HostNew, ID: 1, Host: discovery.Host{Name: "HERON-01", Domain: "LAB"}}
	updates <- discovery.Update{Kind: discovery.HostNew, ID: 2, Host: discovery.Host{Name: "OWL", Domain: "LAB"}} // not shown: no match
	show(<-v.Events())

	// The technician types "owl". SetFilter returns once the view applied
	// it: HERON-01 leaves the list and OWL joins it.
	v.SetFilter(discovery.MustParseFilter("owl"))
	show(<-v.Events())
	show(<-v.Events())

	// A later fact about a shown host replaces its entry.
	updates <- discovery.Update{Kind: discovery.HostChanged, ID: 2, Host: discovery.Host{Name: "OWL", Domain: "LAB", OS: "Windows 10 Pro"}}
	show(<-v.Events())
	updates <- discovery.Update{Kind: discovery.SourceDone, Source: "netbios"}
	show(<-v.Events())

	// The scan is over: the view says so and stays open for filter changes.
	close(updates)
	show(<-v.Events())
	v.SetFilter(discovery.MustParseFilter("domain:lab"))
	show(<-v.Events())

	cancel() // the view ends with its context and closes its events
	for e := range v.Events() {
		show(e)
	}
	// Output:
	// show 1 HERON-01
	// hide 1 HERON-01
	// show 2 OWL
	// show 2 OWL (Windows 10 Pro)
	// source netbios finished
	// complete
	// show 1 HERON-01
}
