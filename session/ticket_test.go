package session_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// The ticket goes to a file next to the applet; the command line names
// the file only. The fake applet checks in from 127.0.0.1, which is the
// target's own address here, so the default rule accepts it.
func TestTicketFileAndTargetAddress(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.cfg.CheckinFromAnyAddr = false })
	s := h.c.Connect(context.Background(), discovery.Host{Name: "LOCAL", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	r, _ := s.Wait(context.Background())
	if r.State != session.Running {
		t.Fatalf("%v %v", r.State, r.Err)
	}
	h.ls[0].mu.Lock()
	spec := h.ls[0].spec
	h.ls[0].mu.Unlock()
	if want := []string{"-ticket-file", s.ID() + ".ticket"}; !slices.Equal(spec.Args, want) {
		t.Fatalf("args %q, want %q", spec.Args, want)
	}
	if _, left := h.dep.take(`C:\Windows\Temp\` + s.ID() + ".ticket"); left {
		t.Fatal("the applet did not take its ticket file")
	}
	// The applet says goodbye on Close: its handle is told, and is not
	// asked to kill it by process ID.
	cl, err := s.Close(context.Background())
	if err != nil || !cl.Clean() {
		t.Fatalf("%+v %v", cl, err)
	}
	if n := h.ls[0].goodbyes.Load(); n != 1 {
		t.Fatalf("AppletExited called %d times, want 1", n)
	}
}

// A check-in with the right ticket from another address (here: the fake
// applet on 127.0.0.1 for a target at 127.0.2.2) is refused by default,
// reported as an EventRefused with the peer's address, and the session
// fails with a diagnosis that names NAT. CheckinFromAnyAddr accepts it.
func TestCheckinFromAnotherAddressRefused(t *testing.T) {
	h := newHarness(t, func(h *harness) {
		h.cfg.CheckinFromAnyAddr = false
		h.cfg.Timeouts.Checkin = 2 * time.Second
	})
	s := h.c.Connect(context.Background(), host(1))
	evs := collect(t, s)
	var refused []session.Event
	for _, e := range evs {
		if e.Kind == session.EventRefused {
			refused = append(refused, e)
		}
	}
	if len(refused) != 1 || !errors.Is(refused[0].Err, session.ErrCheckinRefused) {
		t.Fatalf("refused events %+v", refused)
	}
	if ap, err := netip.ParseAddrPort(refused[0].Peer); err != nil || ap.Addr().String() != "127.0.0.1" || refused[0].Addr != "127.0.2.2" || refused[0].Session != s.ID() {
		t.Fatalf("refusal peer %q addr %q: %v", refused[0].Peer, refused[0].Addr, err)
	}
	r := s.Result()
	if r.State != session.Failed || r.Step != session.StepCheckin || r.Diagnosis.Code != "checkin-wrong-address" {
		t.Fatalf("%v %v %+v", r.State, r.Step, r.Diagnosis)
	}

	h2 := newHarness(t, nil) // CheckinFromAnyAddr
	if r, _ := h2.c.Connect(context.Background(), host(1)).Wait(context.Background()); r.State != session.Running {
		t.Fatalf("with CheckinFromAnyAddr: %v %v", r.State, r.Err)
	}
}

// A Deployer that cannot write the ticket file is a configuration error:
// the ticket never falls back to the command line.
func TestDeployerWithoutFiles(t *testing.T) {
	h := newHarness(t, nil)
	cfg := h.cfg
	cfg.Deployer = plainDeployer{h.dep}
	if c, err := session.New(cfg); !errors.Is(err, session.ErrBadConfig) || !strings.Contains(err.Error(), "FileDeployer") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("New: %v, want ErrBadConfig naming FileDeployer", err)
	}
	// With Readiness, no ticket is written: a plain Deployer will do.
	cfg.Readiness = func(context.Context, *deploy.Target, deploy.Handle) error { return nil }
	c, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A ticket file that cannot be written fails the launch before any
// launcher runs.
func TestTicketFileWriteFails(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.dep.fileErr = errors.New("disk full") })
	r, _ := h.c.Connect(context.Background(), host(1)).Wait(context.Background())
	if r.State != session.Failed || r.Step != session.StepLaunch || r.Diagnosis.Code != "ticket-file" || h.ls[0].calls.Load() != 0 {
		t.Fatalf("%v %v %v %+v", r.State, r.Step, r.Err, r.Diagnosis)
	}
}

// plainDeployer hides DeployFile.
type plainDeployer struct{ d *fakeDeployer }

func (p plainDeployer) Deploy(ctx context.Context, t *deploy.Target, progress func(done, total int64)) (string, error) {
	return p.d.Deploy(ctx, t, progress)
}
