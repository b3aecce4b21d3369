package sessiontest_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/session/sessiontest"
)

func newPC(name, addr string) *sessiontest.Computer {
	return &sessiontest.Computer{
		Name: name, Domain: "WORKGROUP", Addr: netip.MustParseAddr(addr),
		Accounts: map[string]sessiontest.Account{
			"admin": {Password: "secret", Admin: true},
			"user":  {Password: "secret"},
		},
	}
}

func client(t *testing.T, n *sessiontest.Network, cfg session.Config) *session.Client {
	t.Helper()
	n.Apply(&cfg)
	c, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wait(t *testing.T, s *session.Session) session.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := s.Wait(ctx)
	if err != nil {
		t.Fatalf("session did not leave Connecting: %v (result %+v)", err, r)
	}
	return r
}

// The prompt is asked when the current account is not administrator, and
// the session reaches Running with the account it supplied.
func TestPromptThenRunning(t *testing.T) {
	pc := newPC("PC1", "127.0.2.10")
	n := sessiontest.NewNetwork(pc)
	defer n.Close()
	var asked []adauth.PromptRequest
	user, _ := adauth.Parse(`PC1\user`, "secret")
	c := client(t, n, session.Config{Credentials: user, Prompt: func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
		asked = append(asked, req)
		return adauth.Parse(`PC1\admin`, "secret")
	}})
	s := c.Connect(context.Background(), pc.Host())
	r := wait(t, s)
	if r.State != session.Running || r.Account != `PC1\admin` {
		t.Fatalf("state %s account %q err %v; want Running as PC1\\admin", r.State, r.Account, r.Err)
	}
	if len(asked) != 1 || !errors.Is(asked[0].Reason, adauth.ErrNotAdmin) {
		t.Fatalf("prompts %+v; want one, for ErrNotAdmin", asked)
	}
	if pc.Applets() != 1 {
		t.Fatalf("%d applets run on PC1, want 1", pc.Applets())
	}
	cl, err := s.Close(context.Background())
	if err != nil || !cl.Clean() || len(pc.Files()) != 0 || pc.Applets() != 0 {
		t.Fatalf("close: %v, cleanup %+v, files %v, applets %d", err, cl, pc.Files(), pc.Applets())
	}
}

// A launch failure that the default fallback does not retry fails the
// session at the launch step, and its cleanup still removes the files.
func TestLaunchFailure(t *testing.T) {
	pc := newPC("PC2", "127.0.2.11")
	pc.LaunchErr = &deploy.LaunchError{Launcher: sessiontest.LauncherName, Step: "start", Kind: deploy.ErrAccessDenied, Err: errors.New("access is denied")}
	n := sessiontest.NewNetwork(pc)
	defer n.Close()
	admin, _ := adauth.Parse(`PC2\admin`, "secret")
	c := client(t, n, session.Config{Credentials: admin})
	r := wait(t, c.Connect(context.Background(), pc.Host()))
	if r.State != session.Failed || r.Step != session.StepLaunch || !errors.Is(r.Err, deploy.ErrAccessDenied) {
		t.Fatalf("state %s step %s err %v; want Failed at launch with ErrAccessDenied", r.State, r.Step, r.Err)
	}
	if r.Cleanup == nil || !r.Cleanup.Clean() || len(pc.Files()) != 0 {
		t.Fatalf("cleanup %+v, files %v; want everything removed", r.Cleanup, pc.Files())
	}
}

// An applet that never checks in fails the session at the check-in step
// when its timeout ends, and is stopped.
func TestNoCheckin(t *testing.T) {
	pc := newPC("PC3", "127.0.2.12")
	pc.NoCheckin = true
	n := sessiontest.NewNetwork(pc)
	defer n.Close()
	admin, _ := adauth.Parse(`PC3\admin`, "secret")
	c := client(t, n, session.Config{Credentials: admin, Timeouts: session.Timeouts{Checkin: 200 * time.Millisecond}})
	r := wait(t, c.Connect(context.Background(), pc.Host()))
	if r.State != session.Failed || r.Step != session.StepCheckin || !errors.Is(r.Err, session.ErrCheckin) {
		t.Fatalf("state %s step %s err %v; want Failed at checkin", r.State, r.Step, r.Err)
	}
	if pc.Applets() != 0 || len(pc.Files()) != 0 {
		t.Fatalf("applets %d, files %v left", pc.Applets(), pc.Files())
	}
}

// The network's discoverer lists every computer, and a wrong password is
// a logon failure for the session (no prompt configured).
func TestDiscoverAndLogonFailure(t *testing.T) {
	a, b := newPC("PC4", "127.0.2.13"), newPC("PC5", "127.0.2.14")
	n := sessiontest.NewNetwork(a, b)
	defer n.Close()
	bad, _ := adauth.Parse(`PC4\admin`, "wrong")
	c := client(t, n, session.Config{Credentials: bad})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v := c.Hosts(ctx, discovery.Filter{})
	var names []string
	for e := range v.Events() {
		if e.Kind == discovery.Show {
			names = append(names, e.Host.Name)
		}
		if e.Kind == discovery.Complete {
			break
		}
	}
	if len(names) != 2 {
		t.Fatalf("hosts %v, want PC4 and PC5", names)
	}
	r := wait(t, c.Connect(ctx, a.Host()))
	if r.State != session.Failed || !errors.Is(r.Err, adauth.ErrLogonFailure) {
		t.Fatalf("state %s err %v; want Failed with ErrLogonFailure", r.State, r.Err)
	}
	if n.Logons() != 1 {
		t.Fatalf("%d logons, want 1", n.Logons())
	}
}
