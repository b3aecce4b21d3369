package discovery

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// Source names where knowledge of a host came from. Sources are short,
// lower-case and stable: they appear in NDJSON output and in consoles.
type Source string

// The sources lanconnect ships. Vendors may add their own.
const (
	SourceNetBIOS Source = "netbios" // NetBIOS name service (UDP 137)
	SourceLDAP    Source = "ldap"    // an Active Directory domain controller
	SourceSMB     Source = "smb"     // the SMB2 negotiate and NTLM challenge probe (TCP 445)
	SourceDNS     Source = "dns"     // a DNS lookup of the host's name
)

// TrustedForAddrs reports whether s is trusted for addresses: whether an
// address it reports for a named host is taken as that host's address.
// DNS and the directory (SourceLDAP, whose addresses are DNS lookups of
// the computers' dNSHostName) are; NetBIOS and the SMB probe are not:
// their records are a host's claims about its own name, which any host on
// the LAN can make. Merge uses the difference to keep a host that claims
// another's name apart (see Host.Conflict). Vendors' own sources are not
// trusted.
func (s Source) TrustedForAddrs() bool { return s == SourceDNS || s == SourceLDAP }

// Role is something a host does on the network, as announced by its NetBIOS
// names or read from the directory. Roles are short, lower-case and stable.
type Role string

// Roles derived from NetBIOS name suffixes and directory attributes.
const (
	RoleWorkstation         Role = "workstation"           // <00> unique: the workstation service
	RoleFileServer          Role = "file-server"           // <20> unique: the server service (file sharing)
	RoleMessenger           Role = "messenger"             // <03> unique: messenger / logged-on user
	RoleDomainController    Role = "domain-controller"     // <1C> group, or a DC in the directory
	RoleMasterBrowser       Role = "master-browser"        // <1D> unique: local master browser
	RoleDomainMasterBrowser Role = "domain-master-browser" // <1B> unique: domain master browser
	RoleBrowserElection     Role = "browser-election"      // <1E> group: takes part in browser elections
)

// Host is what is known about one computer. A Host value is a snapshot: a
// discoverer sends a new value each time it learns something, and Merge
// combines the values of all sources into one enriched Host per computer.
//
// Zero fields are unknown, not false: an empty OS means the OS was not
// reported, a nil Enabled means the source does not know. Slices are never
// shared between snapshots that Merge emits; a receiver may keep them.
type Host struct {
	// Name is the computer's NetBIOS name (or the directory's cn when only
	// the directory knows it), without the suffix byte or padding.
	Name string
	// DNSName is the fully qualified DNS name, when a source reports one.
	DNSName string
	// Addrs are the addresses the host was seen at, in the order first seen.
	Addrs []netip.Addr
	// TrustedAddrs are those of Addrs that a source trusted for addresses
	// reported (see Source.TrustedForAddrs: DNS, the directory), in the
	// order first seen. Connect prefers them to Addrs. A discoverer of a
	// trusted source may leave it empty: Merge fills it from Addrs.
	TrustedAddrs []netip.Addr
	// Conflict is empty normally. When set, it says why this host's name
	// is in doubt: it claims (over NetBIOS or in its SMB answer) the name
	// of a host that DNS or the directory places at another address, or
	// it was merged under that name before the trusted address was known.
	// Merge keeps such a claimant apart from the named host; connecting to
	// it by name is refused (see package session).
	Conflict string
	// Domain is the Windows domain or workgroup the host belongs to.
	Domain string
	// OS and OSVersion are the product name and version ("Windows 11 Pro",
	// "10.0 (22631)") when a source reports them.
	OS        string
	OSVersion string
	// MAC is the hardware address a NetBIOS node status reports. It is nil
	// when unknown or all zero (Samba always reports zero).
	MAC net.HardwareAddr
	// Roles are the roles the host announces, without duplicates.
	Roles []Role
	// Sources are the sources that have seen the host, without duplicates.
	Sources []Source
	// FirstSeen and LastSeen are when any source first and last saw the host.
	FirstSeen time.Time
	LastSeen  time.Time

	// Directory facts, set by the LDAP source.

	// DN is the host's distinguished name in the directory.
	DN string
	// GUID is the directory object's objectGUID in canonical string form.
	GUID string
	// Enabled is whether the computer account is enabled; nil when unknown.
	Enabled *bool
	// LastLogon is the directory's lastLogonTimestamp (replicated, so up to
	// two weeks stale by design); zero when unknown.
	LastLogon time.Time
	// Created is the directory's whenCreated; zero when unknown.
	Created time.Time
	// LAPS is the LAPS format whose password attribute the directory let
	// the listing's account read ("legacy", "windows",
	// "windows-encrypted"; adauth.Directory.LAPS), "" when none or not
	// asked. Never the password.
	LAPS string

	// SMB facts, set by the SMB probe.

	// Dialect is the highest SMB dialect negotiated ("3.1.1"), when probed.
	Dialect string
	// SigningRequired reports whether the server requires SMB signing; nil
	// when unknown.
	SigningRequired *bool
}

// Discoverer is a source of hosts.
//
// Discover sends each host on out as soon as it is found, possibly several
// times for one host as it learns more, and returns when the source is
// exhausted, when ctx is done, or on a fatal error. It never closes out:
// the caller owns the channel. A send on out blocks until the caller
// receives or ctx is done, so a Discoverer must select on ctx.Done() with
// every send. Discover returns nil when it finished its work, ctx.Err()
// when it was cancelled, and any other error when it could not go on; hosts
// sent before an error remain valid.
//
// Discover does not deduplicate across sources and does not filter: Merge
// and Filter do.
type Discoverer interface {
	Discover(ctx context.Context, out chan<- Host) error
}

// DiscovererFunc adapts a function to the Discoverer interface.
type DiscovererFunc func(ctx context.Context, out chan<- Host) error

// Discover calls f(ctx, out).
func (f DiscovererFunc) Discover(ctx context.Context, out chan<- Host) error { return f(ctx, out) }
