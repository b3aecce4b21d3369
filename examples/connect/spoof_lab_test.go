package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// rogueCounts reads the counters the rogue helper writes: name queries
// answered, SMB NEGOTIATEs, CHALLENGEs sent and AUTHENTICATEs received.
type counts struct{ queries, negotiates, challenges, authenticates int }

func rogueCounts(t *testing.T, path string) counts {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c counts
	if _, err := fmt.Sscanf(string(b), "queries=%d negotiates=%d challenges=%d authenticates=%d", &c.queries, &c.negotiates, &c.challenges, &c.authenticates); err != nil {
		t.Fatalf("counter file %q: %v", b, err)
	}
	return c
}

func (c counts) minus(d counts) counts {
	return counts{c.queries - d.queries, c.negotiates - d.negotiates, c.challenges - d.challenges, c.authenticates - d.authenticates}
}

// waitNBName waits until a broadcast name query in ns finds name (nmbd
// answers for its own name only once its registration is over, a few
// seconds after it started).
func waitNBName(ctx context.Context, t *testing.T, ns *testlab.Netns, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := ns.Command(ctx, "nmblookup", name).CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody answers for %s: %v\n%s", name, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startRogue runs testdata/rogue in tgt's namespace: it answers NetBIOS
// name queries for claim and challenges as identity over SMB. It returns
// the path of its counter file.
func startRogue(ctx context.Context, t *testing.T, tgt *testlab.Target, claim, identity string) string {
	t.Helper()
	bin := buildBin(t, "rogue", "github.com/lanconnect/lanconnect/examples/connect/testdata/rogue")
	counter := filepath.Join(t.TempDir(), "rogue.count")
	p, err := tgt.Start(ctx, bin, "-claim", claim, "-addr", tgt.Addr.String(), "-identity", identity, "-count", counter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	waitPort(t, net.JoinHostPort(tgt.Addr.String(), "445"), p)
	return counter
}

// TestLabSpoofedName runs connect in the lab's client namespace against a
// real target (LCREAL: smbd, nmbd and winemu) and a rogue host that
// answers NetBIOS name queries for LCREAL with its own address and runs
// an SMB server that sends an NTLM challenge under its own name and
// counts AUTHENTICATE messages (testdata/rogue, a small Responder).
// Connecting by name must never reach the rogue's AUTHENTICATE counter;
// connecting by address must still work.
func TestLabSpoofedName(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	buildAll(t)
	buildBin(t, "rogue", "github.com/lanconnect/lanconnect/examples/connect/testdata/rogue")
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{Name: "LCREAL"}, {Name: "LCROGUE", Bare: true}}, Client: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	real, rogue := lab.Targets[0], lab.Targets[1]
	startWinemu(ctx, t, real, real.Admin.Password)
	waitNBName(ctx, t, lab.Client, "LCREAL")
	counter := startRogue(ctx, t, rogue, "LCREAL", "LCROGUE")
	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	base := []string{"-console", net.JoinHostPort(lab.Client.Addr.String(), "0"), "-applet", applet, "-checkin-timeout", "30s", "-method", "scm", "-user", real.Admin.User}
	// The client's resolv.conf points at its own loopback (no DC): DNS has
	// no answer, so names go to a NetBIOS broadcast on the lab bridge.

	t.Run("two responders: name-conflict, nothing sent", func(t *testing.T) {
		before := rogueCounts(t, counter)
		r := runConnectIn(ctx, t, lab.Client, real.Admin.Password, append(base, "LCREAL")...)
		last := r.last("LCREAL")
		if r.code != 1 || last.State != "Failed" || last.Code != "name-conflict" ||
			!strings.Contains(last.Diagnosis, real.Addr.String()) || !strings.Contains(last.Diagnosis, rogue.Addr.String()) {
			t.Fatalf("exit %d, last %+v\nstderr:\n%s", r.code, last, r.stderr)
		}
		if got := rogueCounts(t, counter).minus(before); got.queries == 0 || got.negotiates != 0 || got.challenges != 0 || got.authenticates != 0 {
			t.Fatalf("rogue saw %+v: want its name queries answered and no SMB at all", got)
		}
	})

	t.Run("only the rogue answers: identity-mismatch, no AUTHENTICATE", func(t *testing.T) {
		if err := real.StopNmbd(); err != nil {
			t.Fatal(err)
		}
		before := rogueCounts(t, counter)
		r := runConnectIn(ctx, t, lab.Client, real.Admin.Password, append(base, "LCREAL")...)
		last := r.last("LCREAL")
		if r.code != 1 || last.State != "Failed" || last.Code != "identity-mismatch" || !strings.Contains(last.Diagnosis, `"LCROGUE"`) {
			t.Fatalf("exit %d, events %s, last %+v\nstderr:\n%s", r.code, brief(r.of("LCREAL")), last, r.stderr)
		}
		if got := rogueCounts(t, counter).minus(before); got.negotiates != 1 || got.challenges != 1 || got.authenticates != 0 {
			t.Fatalf("rogue saw %+v: want one challenge and no AUTHENTICATE", got)
		}
	})

	t.Run("the rogue by address: its counter works", func(t *testing.T) {
		// An address is the technician's own choice: no name to check, so
		// the credentials go to it. This proves the counter counts.
		before := rogueCounts(t, counter)
		r := runConnectIn(ctx, t, lab.Client, real.Admin.Password, append(base, rogue.Addr.String())...)
		if last := r.last(rogue.Addr.String()); r.code != 1 || last.Code != "logon-failure" {
			t.Fatalf("exit %d, last %+v\nstderr:\n%s", r.code, last, r.stderr)
		}
		if got := rogueCounts(t, counter).minus(before); got.authenticates != 1 {
			t.Fatalf("rogue saw %+v: want one AUTHENTICATE", got)
		}
	})

	t.Run("the real computer by address still works", func(t *testing.T) {
		r := runConnectIn(ctx, t, lab.Client, real.Admin.Password, append(base, real.Addr.String())...)
		checkRunningThenClosed(t, r, real.Addr.String(), "scm")
	})
}

// TestLabDNSFirst: on a domain LAN (the lab's DC serves DNS to the client,
// with the realm as search domain) DNS places LCREAL at the real target,
// while the rogue answers NetBIOS queries for it. connect LCREAL asks DNS
// first, so it never sends a name query the rogue could answer, and it
// reaches Running on the real target (whose NTLM identity matches).
func TestLabDNSFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	if err := testlab.AvailableDC(); err != nil {
		t.Skip(err)
	}
	buildAll(t)
	buildBin(t, "rogue", "github.com/lanconnect/lanconnect/examples/connect/testdata/rogue")
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{Name: "LCREAL"}, {Name: "LCROGUE", Bare: true}}, DC: &testlab.DCSpec{}, Client: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	real, rogue := lab.Targets[0], lab.Targets[1]
	startWinemu(ctx, t, real, real.Admin.Password)
	counter := startRogue(ctx, t, rogue, "LCREAL", "LCROGUE")
	if err := lab.DC.AddHostRecord(ctx, "LCREAL", real.Addr); err != nil {
		t.Fatal(err)
	}
	// The rogue does answer broadcasts for the name: without DNS first it
	// would be asked.
	// nmblookup prints the answers that arrive within its own wait, so on
	// a loaded machine one run may miss the rogue's: ask again, within a
	// deadline, and fail with the last answer seen.
	before := rogueCounts(t, counter)
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := lab.Client.Command(ctx, "nmblookup", "LCREAL").CombinedOutput()
		if err == nil && strings.Contains(string(out), rogue.Addr.String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nmblookup LCREAL in the client never showed the rogue %s: %v\n%s", rogue.Addr, err, out)
		}
	}
	if got := rogueCounts(t, counter).minus(before); got.queries == 0 {
		t.Fatalf("the rogue did not count the broadcast query: %+v", got)
	}

	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	before = rogueCounts(t, counter)
	r := runConnectIn(ctx, t, lab.Client, real.Admin.Password,
		"-console", net.JoinHostPort(lab.Client.Addr.String(), "0"), "-applet", applet, "-checkin-timeout", "30s", "-method", "scm", "-user", real.Admin.User, "LCREAL")
	last := checkRunningThenClosed(t, r, "LCREAL", "scm")
	if got := rogueCounts(t, counter).minus(before); got != (counts{}) {
		t.Fatalf("the rogue saw %+v: want nothing (DNS answered)", got)
	}
	for _, e := range r.of("LCREAL") {
		if e.State == "Running" && e.raw["addr"] != real.Addr.String() {
			t.Fatalf("running at %v, want the DNS address %s", e.raw["addr"], real.Addr)
		}
	}
	t.Logf("connect LCREAL: %s, closed with %d undone", brief(r.of("LCREAL")), len(last.Cleanup.Undone))
}
