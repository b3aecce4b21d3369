package krb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oiweiwei/gokrb5.fork/v9/client"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/errorcode"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/etypeID"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/nametype"
	"github.com/oiweiwei/gokrb5.fork/v9/messages"
	"github.com/oiweiwei/gokrb5.fork/v9/types"
)

// TestTGSExchangesInParallel: the TGS exchanges of one credential for
// different SPNs (the hosts of a bulk run) are at the KDC at the same
// time, each diagnosed from its own answer; callers that need the same
// SPN at once share one exchange. The fake KDC holds every TGS-REQ until
// all the distinct ones have arrived and every caller has been started
// (or 5 s passed), and then refuses it as an unknown SPN. Exchanges run
// one after the other would each wait the 5 s, and reach the KDC one at
// a time.
func TestTGSExchangesInParallel(t *testing.T) {
	const n, same = 4, 3
	k := newFakeKDC(t, errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN, 0, nil)
	var (
		mu             sync.Mutex
		inflight, peak int
	)
	all, callers := make(chan struct{}), make(chan struct{})
	k.mu.Lock()
	k.hold = func() {
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		if inflight == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			<-callers // and every caller has been started
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inflight--
		mu.Unlock()
	}
	k.mu.Unlock()

	ctx := context.Background()
	c, cred := primedCache(t, k)
	defer c.Close()

	var spns []string
	for i := range n {
		spns = append(spns, fmt.Sprintf("cifs/pc%d.example.test", i))
	}
	for range same - 1 {
		spns = append(spns, spns[0])
	}
	errs := make([]error, len(spns))
	t0 := time.Now()
	var wg, started sync.WaitGroup
	started.Add(len(spns))
	for i, spn := range spns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			_, errs[i] = c.ServiceTicket(ctx, cred, spn)
		}()
	}
	started.Wait()
	close(callers)
	wg.Wait()
	took := time.Since(t0)
	for i, err := range errs {
		var ke *Error
		if !errors.Is(err, ErrSPNUnknown) || !errors.As(err, &ke) || ke.SPN != spns[i] {
			t.Errorf("%s: %v, want ErrSPNUnknown for its own SPN", spns[i], err)
		}
	}
	mu.Lock()
	p := peak
	mu.Unlock()
	if got := k.count(tagTGSReq); p != n || got != n || c.Stats().TGSReqs != int64(n) {
		t.Fatalf("%d TGS-REQs at the KDC at once, %d in all (counted %d), took %v; want all %d at once, one per SPN",
			p, got, c.Stats().TGSReqs, took, n)
	}
}

// primedCache returns a cache whose KDC is k and a credential that has a
// TGT there, as if the AS exchange had been made (the fake KDC does not
// read it), so that TGS exchanges can be measured alone.
func primedCache(t testing.TB, k *fakeKDC) (*Cache, Credential) {
	t.Helper()
	c := NewCache(Config{KDC: k.ln.Addr().String(), Timeout: 5 * time.Second})
	cred := Credential{User: "tech", Realm: "example.test", Password: "not-the-password-Zq9"}
	e, err := c.entry(cred)
	if err != nil {
		t.Fatal(err)
	}
	kdcs, err := c.Locate(context.Background(), "EXAMPLE.TEST")
	if err != nil {
		t.Fatal(err)
	}
	if e.conf, err = c.clientConfig(kdcs); err != nil {
		t.Fatal(err)
	}
	e.kdcs, e.cl = kdcs, client.NewWithPassword("tech", "EXAMPLE.TEST", "", e.conf)
	e.tgt = &ticket{
		tkt: messages.Ticket{TktVNO: 5, Realm: "EXAMPLE.TEST", SName: types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "krbtgt/EXAMPLE.TEST"),
			EncPart: types.EncryptedData{EType: etypeID.AES256_CTS_HMAC_SHA1_96, Cipher: make([]byte, 64)}},
		key: types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: make([]byte, 32)},
		end: time.Now().Add(time.Hour),
	}
	return c, cred
}

// BenchmarkTGSBulk measures the ticket step of a 16-host bulk run (one
// TGS exchange for cifs/ and one for host/ per host, all asked at once)
// against a KDC 10 ms away (a fake on loopback that waits 10 ms before
// each answer; it refuses every SPN, which costs the client what a ticket
// would). Exchanges made one after the other take 32 round trips.
func BenchmarkTGSBulk(b *testing.B) {
	k := newFakeKDC(b, errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN, 0, nil)
	k.mu.Lock()
	k.hold = func() { time.Sleep(10 * time.Millisecond) }
	k.mu.Unlock()
	c, cred := primedCache(b, k)
	defer c.Close()
	ctx := context.Background()
	round := 0
	for b.Loop() {
		round++
		var wg sync.WaitGroup
		for h := range 16 {
			for _, class := range []string{"cifs", "host"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					spn := fmt.Sprintf("%s/pc%d-%d.example.test", class, h, round)
					if _, err := c.ServiceTicket(ctx, cred, spn); !errors.Is(err, ErrSPNUnknown) {
						b.Errorf("%s: %v", spn, err)
					}
				}()
			}
		}
		wg.Wait()
	}
}

// TestUnreachableKDCTriedOnce: hosts that wait for the same credential's
// TGT while its AS exchange runs into a KDC that never answers all get
// that exchange's "KDC unreachable" when it times out, instead of each
// trying again in turn (a 16-host run would take 16 timeouts to fail). A
// later call tries again: the KDC may be back.
func TestUnreachableKDCTriedOnce(t *testing.T) {
	const n = 4
	k := newFakeKDC(t, errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN, 0, nil)
	silent := make(chan struct{})
	t.Cleanup(func() { close(silent) })
	k.mu.Lock()
	k.hold = func() { <-silent } // never answers while the test runs
	k.mu.Unlock()
	c := NewCache(Config{KDC: k.ln.Addr().String(), Timeout: 3 * time.Second})
	defer c.Close()
	cred := Credential{User: "tech", Realm: "example.test", Password: "not-the-password-Zq9"}
	ctx := context.Background()
	errs := make([]error, n)
	var started, done sync.WaitGroup
	started.Add(n)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			errs[i] = c.TGT(ctx, cred)
		}()
	}
	started.Wait() // all are calling TGT well before the 3 s attempt ends
	done.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrKDCUnreachable) {
			t.Errorf("caller %d: %v, want ErrKDCUnreachable", i, err)
		}
	}
	if got := k.count(tagASReq); got != 1 {
		t.Fatalf("the KDC got %d AS-REQs from %d waiting callers, want 1", got, n)
	}
	if err := c.TGT(ctx, cred); !errors.Is(err, ErrKDCUnreachable) || k.count(tagASReq) != 2 {
		t.Fatalf("a later call: %v and %d AS-REQs in all, want a new try", err, k.count(tagASReq))
	}
}
