package adauth

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"

	"github.com/lanconnect/lanconnect/discovery"
)

// silentResolver never answers an address lookup: it waits until the
// lookup's context ends, as a DNS server that drops queries makes
// net.Resolver wait. It counts the lookups it was asked.
type silentResolver struct{ lookups atomic.Int64 }

func (r *silentResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (r *silentResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	<-ctx.Done()
	return nil, &net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true}
}

// computerEntry is a search result entry for computer name with a DNS
// host name.
func computerEntry(name string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchEntry, nil, "entry")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "CN="+name+",CN=Computers,DC=corp,DC=example", "dn"))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attrs")
	for _, kv := range [][2]string{{"sAMAccountName", name + "$"}, {"dNSHostName", strings.ToLower(name) + ".corp.example"}} {
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attr")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, kv[0], "type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, kv[1], "val"))
		a.AppendChild(set)
		attrs.AppendChild(a)
	}
	op.AppendChild(attrs)
	return op
}

// TestListingNeverWaitsOnDNS: with a DNS server that never answers, every
// computer is still sent at the directory's pace, and Discover returns
// soon after the listing: the circuit breaker stops the lookups after a
// few consecutive timeouts, and what is left is cut off by the wait bound
// after the listing. Before, each of 8 workers waited 5 s per name and
// the listing itself stalled once 1,024 names were queued.
func TestListingNeverWaitsOnDNS(t *testing.T) {
	const n = 3000
	r := &silentResolver{}
	d := &Directory{URL: "ldap://192.0.2.1", AllowPlaintext: true, Resolver: r, Timeout: 5 * time.Second}
	s := &scriptedServer{t: t, handler: func(id int64, op *ber.Packet) []*ber.Packet {
		switch op.Tag {
		case appSearchRequest:
			base, _ := op.Children[0].Value.(string)
			switch {
			case base == "":
				return []*ber.Packet{ldapMsg(id, rootDSEEntry()), ldapMsg(id, ldapResultOp(appSearchDone, 0, ""))}
			case strings.HasPrefix(base, "DC=corp"):
				resps := make([]*ber.Packet, 0, n+1)
				for i := range n {
					resps = append(resps, ldapMsg(id, computerEntry(fmt.Sprintf("WS%05d", i))))
				}
				return append(resps, ldapMsg(id, ldapResultOp(appSearchDone, 0, "")))
			}
			return []*ber.Packet{ldapMsg(id, ldapResultOp(appSearchDone, 0, ""))}
		case appBindRequest:
			return []*ber.Packet{ldapMsg(id, ldapResultOp(appBindResponse, 0, ""))}
		case 2: // UnbindRequest
			return nil
		}
		return []*ber.Packet{ldapMsg(id, ldapResultOp(appSearchDone, 0, ""))}
	}}
	d.Dial = s.dial
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := make(chan discovery.Host, 64)
	names := map[string]bool{}
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		for h := range out {
			names[h.Name] = true
		}
	}()
	t0 := time.Now()
	err := d.Discover(ctx, out)
	took := time.Since(t0)
	close(out)
	<-counted
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if len(names) != n {
		t.Fatalf("%d computers sent, want %d", len(names), n)
	}
	// The breaker opens after resolveBreaker timeouts of resolveTimeout
	// each (8 workers: the first round), then the rest drain at once; the
	// wait after the listing is bounded too. A generous bound keeps this
	// deterministic on a loaded machine and still fails the old code,
	// which needed about n/8 × 5 s.
	if limit := resolveTimeout + resolveAfterListing + 15*time.Second; took > limit {
		t.Fatalf("Discover took %v with a silent DNS server (%d lookups), want under %v", took, r.lookups.Load(), limit)
	}
	if l := r.lookups.Load(); l > 4*resolveBreaker {
		t.Fatalf("%d lookups were sent to a DNS server that does not answer, want the breaker to stop them near %d", l, resolveBreaker)
	}
	t.Logf("%d computers in %v; %d lookups sent to the silent DNS server", n, took.Round(time.Millisecond), r.lookups.Load())
}

// The breaker: once resolveBreaker lookups in a row have timed out, the
// workers look nothing more up and drain their queue at once, counting
// the names as unresolved. Eight workers meet a silent server: eight
// lookups, one timeout each, then the other names are skipped.
func TestResolveBreaker(t *testing.T) {
	r := &silentResolver{}
	d := &Directory{Resolver: r}
	const names = 400
	jobs := nameJobs(names)
	out := make(chan discovery.Host, names)
	var rs resolveState
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for range resolveBreaker {
			wg.Go(func() { d.resolveWorker(context.Background(), jobs, out, &rs) })
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(3*resolveTimeout + 10*time.Second):
		t.Fatalf("workers still busy; %d lookups so far, breaker open %v", r.lookups.Load(), rs.open.Load())
	}
	if !rs.open.Load() || r.lookups.Load() > 2*resolveBreaker || rs.unresolved() != names || len(out) != 0 {
		t.Fatalf("breaker open %v, %d lookups, %d unresolved of %d, %d sent", rs.open.Load(), r.lookups.Load(), rs.unresolved(), names, len(out))
	}
}

// nameJobs returns a closed queue of n hosts with DNS names to look up.
func nameJobs(n int) chan discovery.Host {
	jobs := make(chan discovery.Host, n)
	for i := range n {
		jobs <- discovery.Host{Name: fmt.Sprintf("WS%d", i), DNSName: fmt.Sprintf("ws%d.corp.example", i)}
	}
	close(jobs)
	return jobs
}

// nxResolver answers every address lookup at once: with an address for
// every every-th name (when every > 0), NXDOMAIN for the others.
type nxResolver struct {
	every   int
	lookups atomic.Int64
}

func (r *nxResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (r *nxResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	n := r.lookups.Add(1)
	if r.every > 0 && n%int64(r.every) == 0 {
		return []netip.Addr{netip.MustParseAddr("192.0.2.7")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestResolveMissBreaker: a DNS server that knows none of the names (it
// answers NXDOMAIN at once) is asked about resolveMissBreaker of them, not
// about all: each answer costs CPU that the listing needs. One that knows
// some of them, even few, is asked about every name.
func TestResolveMissBreaker(t *testing.T) {
	const names = 2000
	run := func(r *nxResolver) (*resolveState, int) {
		d := &Directory{Resolver: r}
		jobs := nameJobs(names)
		out := make(chan discovery.Host, names)
		var rs resolveState
		var wg sync.WaitGroup
		for range DefaultResolveConcurrency {
			wg.Go(func() { d.resolveWorker(context.Background(), jobs, out, &rs) })
		}
		wg.Wait()
		return &rs, len(out)
	}
	nx := &nxResolver{}
	rs, sent := run(nx)
	if !rs.open.Load() || nx.lookups.Load() > resolveMissBreaker+DefaultResolveConcurrency || rs.unresolved() != names || sent != 0 {
		t.Fatalf("NXDOMAIN for all: breaker open %v, %d lookups (want about %d), %d unresolved of %d, %d sent",
			rs.open.Load(), nx.lookups.Load(), resolveMissBreaker, rs.unresolved(), names, sent)
	}
	some := &nxResolver{every: 100} // 1% of the names resolve
	rs, sent = run(some)
	if rs.open.Load() || some.lookups.Load() != names || sent != names/100 || rs.unresolved() != names-names/100 {
		t.Fatalf("1%% resolving: breaker open %v, %d lookups of %d, %d resolved, %d unresolved",
			rs.open.Load(), some.lookups.Load(), names, sent, rs.unresolved())
	}
}
