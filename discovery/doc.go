// Package discovery defines what the rest of lanconnect knows about a
// computer on the LAN and how sources of that knowledge are combined.
//
// It owns [Host] (names, addresses, domain or workgroup, OS, MAC, roles,
// the sources that saw it and when), the [Discoverer] interface that every
// source implements, [Filter] (case-insensitive name or domain substring or
// glob, IP, CIDR, range, and the qualifiers domain:, os: and source:), and
// [Merge], which runs several discoverers at once and fans
// their findings into one deduplicated, enriched stream of updates. [View]
// turns that stream into a live list under a filter that may change at any
// time, re-evaluating the hosts already seen. [Broadcaster] fans one
// Merge stream out to many live views, so that a console with many pages
// runs one discovery. [AddrRange] parses the
// addresses, CIDRs and ranges that filters and scanners share.
//
// Sources differ in trust: DNS and the directory are trusted for addresses
// (Source.TrustedForAddrs), while NetBIOS and the SMB probe report what a
// host claims about its own name, which any host on the LAN can claim.
// Merge records trusted addresses in Host.TrustedAddrs and keeps a
// claimant of a name that a trusted source places elsewhere apart, flagged
// with Host.Conflict.
//
// The package depends on the standard library only. It does not send a
// single packet itself: the NetBIOS scanner lives in package netbios, the
// directory search in package adauth.
package discovery
