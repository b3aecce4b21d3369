package discovery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// HostID identifies one merged host in a Merge stream. IDs start at 1 and
// are never reused within a stream.
type HostID uint64

// UpdateKind says what an Update reports.
type UpdateKind uint8

// Update kinds.
const (
	// HostNew is the first update of a host.
	HostNew UpdateKind = iota + 1
	// HostChanged carries a host's new merged state.
	HostChanged
	// HostRemoved says the host was merged into another (MergedInto),
	// because a later fact showed they are one computer. No update for
	// its ID follows.
	HostRemoved
	// SourceDone says a discoverer returned; Err is nil or its error.
	SourceDone
)

// String returns "new", "changed", "removed" or "source-done".
func (k UpdateKind) String() string {
	switch k {
	case HostNew:
		return "new"
	case HostChanged:
		return "changed"
	case HostRemoved:
		return "removed"
	case SourceDone:
		return "source-done"
	}
	return fmt.Sprintf("UpdateKind(%d)", uint8(k))
}

// Update is one event of a Merge stream.
type Update struct {
	Kind UpdateKind
	// ID is the merged host's ID (zero for SourceDone).
	ID HostID
	// Host is the full merged state for HostNew and HostChanged, and the
	// last state for HostRemoved. Its slices belong to the receiver.
	Host Host
	// MergedInto is, for HostRemoved, the ID that absorbed this host.
	MergedInto HostID
	// Source names the discoverer, for SourceDone.
	Source string
	// Err is, for SourceDone, nil when the discoverer finished or was
	// cancelled, and a *SourceError otherwise.
	Err error
}

// SourceError is a discoverer's failure as Merge reports it.
type SourceError struct {
	Source string
	Err    error
}

// Error returns the source's name and its error.
func (e *SourceError) Error() string { return e.Source + ": " + e.Err.Error() }

// Unwrap returns the discoverer's error.
func (e *SourceError) Unwrap() error { return e.Err }

// Named gives a discoverer a name for SourceDone updates and errors. Merge
// also uses the Name method of any discoverer that has one, and "source N"
// (its position, from 1) otherwise.
func Named(name string, d Discoverer) Discoverer { return named{name, d} }

type named struct {
	name string
	Discoverer
}

// Name returns the name given to Named.
func (n named) Name() string { return n.name }

func sourceName(d Discoverer, i int) string {
	if n, ok := d.(interface{ Name() string }); ok {
		return n.Name()
	}
	return fmt.Sprintf("source %d", i+1)
}

// Merge runs the discoverers concurrently and returns one stream of
// updates about the hosts they find, merged and enriched.
//
// Merging. Two findings are one host when they share an address, the same
// NetBIOS name and domain (case-insensitive), or the same DNS name. The
// keys are indexed as a union: when a later finding links two hosts
// already reported, the older ID absorbs the younger, which gets a
// HostRemoved update after the older one's HostChanged (none if the
// receiver had not yet received the younger's HostNew). Enrichment fills
// empty fields (first value wins), takes the union of addresses, roles and sources (in first-seen order),
// the earliest FirstSeen and the latest LastSeen and LastLogon. A finding
// with zero FirstSeen or LastSeen is stamped with the time Merge received
// it. A finding that changes nothing produces no update, and one with no
// address, name or DNS name is ignored.
//
// Names are claims. Addresses that a source trusted for addresses reports
// (Source.TrustedForAddrs: DNS, the directory) become the host's
// TrustedAddrs; NetBIOS and SMB-probe records are the host's own claims.
// A finding that shares only a name (not an address) with a host is not
// merged into it when one side's addresses are trusted, the other's are
// claims, and they have none in common: that is another computer
// claiming the name. A claimant stays a host of its own with Conflict
// set, and the name stays with the trusted host; when the trusted
// address comes second, the trusted finding becomes a new host that owns
// the name, and the earlier host is flagged. Two trusted sides, or two
// claims, still merge (a computer may have several addresses). Facts
// already merged are not taken back: a flagged host keeps what it learned
// under the name before (the directory's DN, for instance).
//
// Delivery. One goroutine owned by Merge sends every update, so for each
// host updates arrive in order: HostNew first, then HostChanged, and
// HostRemoved last. A slow receiver does not block the discoverers and
// loses nothing: while an update for a host waits to be received, newer
// findings about that host are folded into it, so the receiver always gets
// the latest state of every host, with at most one pending update per host
// (memory is bounded by the number of hosts). A SourceDone update comes
// after every update caused by that source's findings.
//
// Closing. The channel is closed after every discoverer has returned and
// every update has been received. When ctx is done, Merge stops sending,
// waits for the discoverers to return (they must honour ctx, as the
// Discoverer contract requires) and closes the channel without delivering
// what is pending. One discoverer failing never stops the others.
//
// Merge does not filter: see Filter and View.
func Merge(ctx context.Context, ds ...Discoverer) <-chan Update {
	out := make(chan Update)
	m := &merger{
		out:   out,
		in:    make(chan finding),
		index: make(map[string]HostID),
		recs:  make(map[HostID]*record),
		pend:  make(map[HostID]*Update),
	}
	m.active = len(ds)
	for i, d := range ds {
		m.wg.Add(1)
		go m.run(ctx, d, sourceName(d, i))
	}
	go m.loop(ctx)
	return out
}

type finding struct {
	source string
	host   Host
	done   bool
	err    error
}

type record struct {
	host Host
	keys []string
}

type merger struct {
	out    chan Update
	in     chan finding
	wg     sync.WaitGroup
	active int

	next  HostID
	index map[string]HostID
	recs  map[HostID]*record

	queue []*Update // FIFO of pending updates
	head  int
	pend  map[HostID]*Update // pending HostNew/HostChanged by host
}

// run runs one discoverer and forwards its findings to the loop.
func (m *merger) run(ctx context.Context, d Discoverer, name string) {
	defer m.wg.Done()
	ch := make(chan Host)
	errc := make(chan error, 1)
	go func() { errc <- d.Discover(ctx, ch) }()
	for {
		select {
		case h := <-ch:
			select {
			case m.in <- finding{source: name, host: h}:
			case <-ctx.Done():
			}
		case err := <-errc:
			f := finding{source: name, done: true}
			if err != nil && ctx.Err() == nil {
				f.err = &SourceError{Source: name, Err: err}
			}
			select {
			case m.in <- f:
			case <-ctx.Done():
			}
			return
		}
	}
}

func (m *merger) loop(ctx context.Context) {
	defer close(m.out)
	for {
		// Skip tombstones: pending updates of hosts merged away before
		// the receiver heard of them.
		for m.head < len(m.queue) && m.queue[m.head].Kind == 0 {
			m.queue[m.head] = nil
			m.head++
		}
		var out chan Update
		var head Update
		if m.head < len(m.queue) {
			out = m.out
			head = *m.queue[m.head]
		} else if m.active == 0 {
			return
		}
		select {
		case f := <-m.in:
			if f.done {
				m.active--
				m.push(&Update{Kind: SourceDone, Source: f.source, Err: f.err})
			} else {
				m.apply(f.host, time.Now())
			}
		case out <- head:
			m.queue[m.head] = nil
			m.head++
			if head.Kind == HostNew || head.Kind == HostChanged {
				delete(m.pend, head.ID)
			}
			if m.head > 64 && m.head*2 > len(m.queue) {
				m.queue = append(m.queue[:0], m.queue[m.head:]...)
				m.head = 0
			}
		case <-ctx.Done():
			// Let the forwarders see ctx and return; they never block
			// on m.in once ctx is done.
			m.wg.Wait()
			return
		}
	}
}

func (m *merger) push(u *Update) {
	m.queue = append(m.queue, u)
}

// keysOf returns the merge keys of h.
func keysOf(h Host) []string {
	keys := make([]string, 0, len(h.Addrs)+2)
	for _, a := range h.Addrs {
		if a.IsValid() {
			keys = append(keys, "a:"+a.Unmap().String())
		}
	}
	if h.Name != "" {
		keys = append(keys, "n:"+strings.ToUpper(h.Name)+`\`+strings.ToUpper(h.Domain))
	}
	if h.DNSName != "" {
		keys = append(keys, "d:"+strings.ToLower(strings.TrimSuffix(h.DNSName, ".")))
	}
	return keys
}

func (m *merger) apply(h Host, now time.Time) {
	if h.FirstSeen.IsZero() {
		h.FirstSeen = now
	}
	if h.LastSeen.IsZero() {
		h.LastSeen = now
	}
	h = Clone(h)
	for i, a := range h.Addrs {
		h.Addrs[i] = a.Unmap()
	}
	for i, a := range h.TrustedAddrs {
		h.TrustedAddrs[i] = a.Unmap()
	}
	trustedFinding := slices.ContainsFunc(h.Sources, Source.TrustedForAddrs)
	if trustedFinding {
		h.TrustedAddrs = append(h.TrustedAddrs, h.Addrs...)
	}
	h.TrustedAddrs = unique(slices.DeleteFunc(h.TrustedAddrs, func(a netip.Addr) bool { return !a.IsValid() }))
	for _, a := range h.TrustedAddrs {
		if !slices.Contains(h.Addrs, a) {
			h.Addrs = append(h.Addrs, a)
		}
	}
	keys := keysOf(h)
	if len(keys) == 0 {
		return // nothing to recognise it by again: not a host
	}
	var ids []HostID
	byAddr := map[HostID]bool{}
	for _, k := range keys {
		if id, ok := m.index[k]; ok {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
			if strings.HasPrefix(k, "a:") {
				byAddr[id] = true
			}
		}
	}
	// A host found by name only, whose trusted addresses and the finding's
	// disagree, is another computer: the claimant stays apart, flagged.
	var conflicted []HostID
	ids = slices.DeleteFunc(ids, func(id HostID) bool {
		if !byAddr[id] && conflicts(h, m.recs[id].host) {
			conflicted = append(conflicted, id)
			return true
		}
		return false
	})
	claim := len(h.TrustedAddrs) == 0
	// skip are keys the finding must not take over: the names of the
	// trusted hosts a claimant conflicts with.
	skip := func(k string) bool {
		if !claim {
			return false
		}
		id, ok := m.index[k]
		return ok && slices.Contains(conflicted, id)
	}
	var note string
	if len(conflicted) > 0 {
		if claim {
			note = conflictNote(h, m.recs[conflicted[0]].host.TrustedAddrs)
		} else {
			note = conflictNote(h, h.TrustedAddrs)
		}
	}
	// A trusted finding flags the claimants it conflicts with and takes
	// their name keys.
	if !claim {
		for _, id := range conflicted {
			r := m.recs[id]
			r.keys = slices.DeleteFunc(r.keys, func(k string) bool { return slices.Contains(keys, k) })
			if r.host.Conflict == "" {
				r.host.Conflict = conflictNote(r.host, h.TrustedAddrs)
				m.changed(id, r)
			}
		}
	}
	if len(ids) == 0 {
		m.next++
		id := m.next
		r := &record{host: h}
		r.host.Addrs = unique(slices.DeleteFunc(r.host.Addrs, func(a netip.Addr) bool { return !a.IsValid() }))
		r.host.Roles = unique(r.host.Roles)
		r.host.Sources = unique(r.host.Sources)
		if isZeroMAC(r.host.MAC) {
			r.host.MAC = nil
		}
		if claim && note != "" && r.host.Conflict == "" {
			r.host.Conflict = note
		}
		m.recs[id] = r
		for _, k := range keys {
			if skip(k) {
				continue
			}
			m.index[k] = id
			r.keys = append(r.keys, k)
		}
		u := &Update{Kind: HostNew, ID: id, Host: Clone(r.host)}
		m.pend[id] = u
		m.push(u)
		return
	}
	slices.Sort(ids)
	target := ids[0]
	tr := m.recs[target]
	changed := false
	var removed []*Update
	for _, other := range ids[1:] {
		or := m.recs[other]
		enrich(&tr.host, or.host)
		changed = true
		for _, k := range or.keys {
			m.index[k] = target
			tr.keys = append(tr.keys, k)
		}
		delete(m.recs, other)
		heard := true
		if u, ok := m.pend[other]; ok {
			// Its pending update is void. If it was the host's HostNew,
			// the receiver never heard of it and needs no removal.
			heard = u.Kind != HostNew
			u.Kind = 0
			delete(m.pend, other)
		}
		if heard {
			removed = append(removed, &Update{Kind: HostRemoved, ID: other, Host: Clone(or.host), MergedInto: target})
		}
	}
	// The absorbing host's new state comes before the removals, so that a
	// list never lacks the computer in between.
	defer func() {
		for _, u := range removed {
			m.push(u)
		}
	}()
	if enrich(&tr.host, h) {
		changed = true
	}
	if claim && note != "" && tr.host.Conflict == "" {
		tr.host.Conflict = note
		changed = true
	}
	for _, k := range keys {
		if m.index[k] != target && !skip(k) {
			m.index[k] = target
			tr.keys = append(tr.keys, k)
		}
	}
	if !changed {
		return
	}
	m.changed(target, tr)
}

// changed queues the new state of record id, folding it into an update
// still pending.
func (m *merger) changed(id HostID, r *record) {
	if u, ok := m.pend[id]; ok {
		u.Host = Clone(r.host)
		return
	}
	u := &Update{Kind: HostChanged, ID: id, Host: Clone(r.host)}
	m.pend[id] = u
	m.push(u)
}

// conflicts reports whether finding f, which shares only a name with the
// merged host r, disagrees with it about addresses in a way that makes
// them two computers: one side's addresses come from a source trusted for
// addresses, the other side's are claims, and they have none in common.
// Two trusted sides, or two claims, never conflict: a computer may have
// several addresses.
func conflicts(f, r Host) bool {
	switch {
	case len(f.Addrs) == 0:
		return false
	case len(f.TrustedAddrs) == 0 && len(r.TrustedAddrs) > 0:
		return disjoint(f.Addrs, r.TrustedAddrs)
	case len(f.TrustedAddrs) > 0 && len(r.TrustedAddrs) == 0 && len(r.Addrs) > 0:
		return disjoint(f.TrustedAddrs, r.Addrs)
	}
	return false
}

func disjoint(a, b []netip.Addr) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// conflictNote says that h claims a name that trusted sources place at
// trusted.
func conflictNote(h Host, trusted []netip.Addr) string {
	name := h.Name
	if name == "" {
		name = h.DNSName
	}
	as := make([]string, len(trusted))
	for i, a := range trusted {
		as[i] = a.String()
	}
	return fmt.Sprintf("claims the name %s, which DNS or the directory places at %s", name, strings.Join(as, ", "))
}

// Clone returns a deep copy of h: no slice or pointer is shared.
func Clone(h Host) Host {
	h.Addrs = slices.Clone(h.Addrs)
	h.TrustedAddrs = slices.Clone(h.TrustedAddrs)
	h.Roles = slices.Clone(h.Roles)
	h.Sources = slices.Clone(h.Sources)
	h.MAC = slices.Clone(h.MAC)
	if h.Enabled != nil {
		v := *h.Enabled
		h.Enabled = &v
	}
	if h.SigningRequired != nil {
		v := *h.SigningRequired
		h.SigningRequired = &v
	}
	return h
}

// Enrich folds src into dst as Merge does (fill empty fields, union of
// addresses, trusted addresses, roles and sources, earliest FirstSeen,
// latest LastSeen and LastLogon) and reports whether dst changed. It never
// shares src's slices. It does not copy Conflict, which Merge decides.
func Enrich(dst *Host, src Host) bool { return enrich(dst, src) }

func enrich(dst *Host, src Host) bool {
	changed := false
	fill := func(d *string, s string) {
		if *d == "" && s != "" {
			*d = s
			changed = true
		}
	}
	fill(&dst.Name, src.Name)
	fill(&dst.DNSName, src.DNSName)
	fill(&dst.Domain, src.Domain)
	fill(&dst.OS, src.OS)
	fill(&dst.OSVersion, src.OSVersion)
	fill(&dst.DN, src.DN)
	fill(&dst.GUID, src.GUID)
	fill(&dst.LAPS, src.LAPS)
	fill(&dst.Dialect, src.Dialect)
	for _, a := range src.Addrs {
		if a = a.Unmap(); a.IsValid() && !slices.Contains(dst.Addrs, a) {
			dst.Addrs = append(dst.Addrs, a)
			changed = true
		}
	}
	for _, a := range src.TrustedAddrs {
		if a = a.Unmap(); a.IsValid() && !slices.Contains(dst.TrustedAddrs, a) {
			dst.TrustedAddrs = append(dst.TrustedAddrs, a)
			changed = true
		}
	}
	for _, r := range src.Roles {
		if !slices.Contains(dst.Roles, r) {
			dst.Roles = append(dst.Roles, r)
			changed = true
		}
	}
	for _, s := range src.Sources {
		if !slices.Contains(dst.Sources, s) {
			dst.Sources = append(dst.Sources, s)
			changed = true
		}
	}
	if dst.MAC == nil && !isZeroMAC(src.MAC) {
		dst.MAC = slices.Clone(src.MAC)
		changed = true
	}
	if !src.FirstSeen.IsZero() && (dst.FirstSeen.IsZero() || src.FirstSeen.Before(dst.FirstSeen)) {
		dst.FirstSeen = src.FirstSeen
		changed = true
	}
	if src.LastSeen.After(dst.LastSeen) {
		dst.LastSeen = src.LastSeen
		changed = true
	}
	if src.LastLogon.After(dst.LastLogon) {
		dst.LastLogon = src.LastLogon
		changed = true
	}
	if dst.Created.IsZero() && !src.Created.IsZero() {
		dst.Created = src.Created
		changed = true
	}
	if dst.Enabled == nil && src.Enabled != nil {
		v := *src.Enabled
		dst.Enabled = &v
		changed = true
	}
	if dst.SigningRequired == nil && src.SigningRequired != nil {
		v := *src.SigningRequired
		dst.SigningRequired = &v
		changed = true
	}
	return changed
}

func isZeroMAC(m net.HardwareAddr) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}

func unique[T comparable](s []T) []T {
	var out []T
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
