package session_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/session/checkin"
)

// waitLive polls the Client's count of live sessions until it is n.
func waitLive(t *testing.T, c *session.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for session.LiveSessions(c) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d live sessions, want %d", session.LiveSessions(c), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Client.Close closes every session (Running or still Connecting) without
// waiting for their cleanup, forgets them once over, and a later Connect
// fails at once with ErrClientClosed.
func TestClientCloseClosesSessions(t *testing.T) {
	h := newHarness(t, nil)
	running := h.c.Connect(context.Background(), host(1))
	if r, _ := running.Wait(context.Background()); r.State != session.Running {
		t.Fatal(r.Err)
	}
	h.g.block("launch")
	connecting := h.c.Connect(context.Background(), host(2))
	until(t, connecting, func(e session.Event) bool { return e.Step == session.StepLaunch })
	if n := session.LiveSessions(h.c); n != 2 {
		t.Fatalf("%d live sessions, want 2", n)
	}
	if err := h.c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*session.Session{running, connecting} {
		select {
		case <-s.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("%s not over after Client.Close", s.ID())
		}
		if r := s.Result(); r.State != session.Closed || r.Cleanup == nil {
			t.Fatalf("%s: %v %+v", s.ID(), r.State, r.Cleanup)
		}
	}
	if r := connecting.Result(); !errors.Is(r.Err, session.ErrClosed) {
		t.Fatalf("connecting session's error %v", r.Err)
	}
	waitLive(t, h.c, 0)
	if h.ls[0].running.Load() != 0 {
		t.Fatal("applet still running")
	}

	late := h.c.Connect(context.Background(), host(3))
	<-late.Done()
	r := late.Result()
	if r.State != session.Failed || !errors.Is(r.Err, session.ErrClientClosed) || r.Diagnosis.Code != "client-closed" || h.auth.calls.Load() != 2 {
		t.Fatalf("Connect after Close: %v %v %+v (%d authentications)", r.State, r.Err, r.Diagnosis, h.auth.calls.Load())
	}
	waitLive(t, h.c, 0)
	if err := h.c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Shutdown waits for the cleanup: when it returns, the applet was asked to
// stop over its check-in connection and the journal was undone. With a
// cleanup that cannot finish, it returns ctx's error.
func TestShutdownWaitsForCleanup(t *testing.T) {
	h := newHarness(t, nil)
	s := h.c.Connect(context.Background(), host(1))
	if r, _ := s.Wait(context.Background()); r.State != session.Running {
		t.Fatal(r.Err)
	}
	if err := h.c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Shutdown returned before the session was over")
	}
	r := s.Result()
	if r.State != session.Closed || r.Cleanup == nil || !r.Cleanup.AppletStopped || !r.Cleanup.Clean() || h.ls[0].goodbyes.Load() != 1 {
		t.Fatalf("%v %+v goodbyes %d", r.State, r.Cleanup, h.ls[0].goodbyes.Load())
	}
	if session.LiveSessions(h.c) != 0 {
		t.Fatal("a finished session is still tracked")
	}

	h2 := newHarness(t, func(h *harness) { h.cfg.Timeouts.Cleanup = 2 * time.Second })
	s2 := h2.c.Connect(context.Background(), host(1))
	if r, _ := s2.Wait(context.Background()); r.State != session.Running {
		t.Fatal(r.Err)
	}
	h2.g.block("undo")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h2.c.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a hung undo: %v", err)
	}
	// The cleanup goes on in the background, bounded by its timeout.
	select {
	case <-s2.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the cleanup was not bounded by Timeouts.Cleanup")
	}
	if r := s2.Result(); r.State != session.Closed || r.Cleanup == nil || r.Cleanup.Clean() {
		t.Fatalf("%v %+v", r.State, r.Cleanup)
	}
}

// A session's event goroutine ends with the session, even when its
// channel is never read: the events wait in the channel's buffer, all of
// them, in order.
func TestEventGoroutineEndsUnread(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.dep.steps = 3000 })
	before := runtime.NumGoroutine()
	var ss []*session.Session
	for i := range 4 {
		s := h.c.Connect(context.Background(), host(i))
		_ = s.Events() // delivery starts; nobody reads
		ss = append(ss, s)
	}
	for _, s := range ss {
		s.Wait(context.Background())
		s.Close(context.Background())
		<-s.Done()
	}
	waitLive(t, h.c, 0)
	waitGoroutines(t, before)
	for _, s := range ss {
		got := states(collect(t, s))
		if got[0] != "Connecting/authenticate" || got[len(got)-1] != "Closed/cleanup[scm]" || !slices.Contains(got, "Running/checkin[scm]") {
			t.Fatalf("events %v", got)
		}
	}
}

// The bound holds for the longest sessions: every launcher failing
// (attempts), prompts, and the channel never read.
func TestEventBoundHolds(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.cfg.Credentials = adauth.Credentials{}
		h.cfg.MaxPrompts = 3
		wrong, _ := adauth.Parse("admin", "wrong")
		h.cfg.Prompt = func(context.Context, adauth.PromptRequest) (adauth.Credentials, error) { return wrong, nil }
	})
	s := h.c.Connect(context.Background(), host(1))
	_ = s.Events()
	<-s.Done()
	got := states(collect(t, s))
	want := []string{"Connecting/authenticate", "Connecting/credentials", "Connecting/authenticate", "Connecting/credentials", "Connecting/authenticate",
		"Connecting/credentials", "Connecting/authenticate", "Connecting/cleanup", "Failed/authenticate"}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v\nwant %v", got, want)
	}
}

// New refuses an unusable Config and names the field; Discoverers alone
// are a valid Config (Hosts only).
func TestNewValidates(t *testing.T) {
	h := newHarness(t, nil)
	for _, c := range []struct {
		field string
		mod   func(*session.Config)
	}{
		{"Config.Authenticator", func(c *session.Config) { c.Authenticator = nil }},
		{"Config.Deployer", func(c *session.Config) { c.Deployer = nil }},
		{"Config.Launchers[3]", func(c *session.Config) { c.Launchers = append(c.Launchers, nil) }},
		{"Config.Timeouts.Checkin", func(c *session.Config) { c.Timeouts.Checkin = -time.Second }},
		{"Config.Timeouts.Authenticate", func(c *session.Config) { c.Timeouts.Authenticate = -1 }},
		{"Config.Concurrency", func(c *session.Config) { c.Concurrency = -1 }},
		{"Config.AppletParams", func(c *session.Config) { c.AppletParams = map[string]string{"k": "v"} }},
		{"Config.ConsoleAddr", func(c *session.Config) { c.ConsoleAddr = "10.0.0.5" }},
		{"Config.Checkin", func(c *session.Config) { c.Checkin = &checkin.Server{} }},
	} {
		cfg := h.cfg
		cfg.Launchers = slices.Clone(cfg.Launchers)
		cfg.Launchers = append(cfg.Launchers, deploy.Launcher(h.ls[0]))
		c.mod(&cfg)
		cl, err := session.New(cfg)
		if !errors.Is(err, session.ErrBadConfig) || !strings.Contains(err.Error(), c.field) {
			if cl != nil {
				cl.Close()
			}
			t.Errorf("%s: New returned %v", c.field, err)
		}
	}
	for _, cfg := range []session.Config{{}, {Discoverers: []discovery.Discoverer{discovery.DiscovererFunc(func(context.Context, chan<- discovery.Host) error { return nil })}}} {
		cl, err := session.New(cfg)
		if err != nil {
			t.Fatalf("New(%+v): %v", cfg, err)
		}
		if cl.CheckinAddr() != "" {
			t.Fatal("a Config without Connect started a check-in server")
		}
		cl.Close()
	}
}

// A check-in server on an unspecified address gives each applet this
// machine's address on the route to its target (here loopback, for a
// loopback target), never 0.0.0.0.
func TestCheckinAddrDerivedFromRoute(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.cfg.CheckinListen = "0.0.0.0:0" })
	if a, _ := netip.ParseAddrPort(h.c.CheckinAddr()); !a.Addr().IsUnspecified() {
		t.Fatalf("CheckinAddr %s", h.c.CheckinAddr())
	}
	s := h.c.Connect(context.Background(), discovery.Host{Name: "LOOP", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}})
	if r, _ := s.Wait(context.Background()); r.State != session.Running {
		t.Fatalf("%v %v", r.State, r.Err)
	}
	defer s.Close(context.Background())
	h.ls[0].mu.Lock()
	tickets := slices.Clone(h.ls[0].tickets)
	h.ls[0].mu.Unlock()
	_, port, _ := net.SplitHostPort(h.c.CheckinAddr())
	if len(tickets) != 1 || tickets[0] != net.JoinHostPort("127.0.0.1", port) {
		t.Fatalf("ticket addresses %q, want 127.0.0.1:%s", tickets, port)
	}
}

// A loopback check-in address is never given to a target that is not
// loopback: the session fails with ErrBadConfig before anything is sent
// to the target (no authentication), whether the address is the
// listener's or Config.ConsoleAddr.
func TestCheckinLoopbackForRemoteTargetFails(t *testing.T) {
	for _, mod := range []func(*harness){
		nil, // CheckinListen defaults to 127.0.0.1:0
		func(h *harness) { h.cfg.CheckinListen, h.cfg.ConsoleAddr = "127.0.0.1:0", "localhost:0" },
		func(h *harness) { h.cfg.CheckinListen, h.cfg.ConsoleAddr = "0.0.0.0:0", "127.0.0.1:0" },
	} {
		h := newHarness(t, mod)
		remote := discovery.Host{Name: "REMOTE", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.7")}}
		r := failed(t, h.c.Connect(context.Background(), remote))
		if !errors.Is(r.Err, session.ErrBadConfig) || r.Diagnosis.Code != "checkin-address" || r.Step != session.StepAuthenticate ||
			!strings.Contains(r.Diagnosis.Fix, "ConsoleAddr") {
			t.Fatalf("%v %v %+v", r.Step, r.Err, r.Diagnosis)
		}
		if n := h.auth.calls.Load(); n != 0 {
			t.Fatalf("%d authentications to a target that could not check in", n)
		}
	}
}
