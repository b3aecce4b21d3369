package session_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/winemu"
	"github.com/lanconnect/lanconnect/remotereg"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/session/checkin"
	"github.com/lanconnect/lanconnect/wmi"
)

// These tests run the real session, the real remotereg and wmi launchers
// and the sample applet against winemu in this process, on a fresh
// loopback address (the launchers dial it). Processes on this machine
// connect from 127.0.0.1 whatever loopback address they dial, so the
// session's host is 127.0.0.1: the address the target's connections come
// from, as on a LAN.

// secretRun is what a token, a fingerprint or any other secret looks
// like on a command line: the acceptance contract is that the applet's
// command line has no such run.
var secretRun = regexp.MustCompile(`[A-Za-z0-9+/=_-]{32,}`)

// localDeployer "copies" to winemu's root directory, which stands for
// ADMIN$ (C:\Windows).
type localDeployer struct {
	root, applet string
}

func (d localDeployer) Deploy(_ context.Context, t *deploy.Target, _ func(done, total int64)) (string, error) {
	b, err := os.ReadFile(d.applet)
	if err != nil {
		return "", err
	}
	name := "lcapplet-" + t.Session + ".exe"
	if err := os.WriteFile(filepath.Join(d.root, "Temp", name), b, 0o755); err != nil {
		return "", err
	}
	return `C:\Windows\Temp\` + name, nil
}

func (d localDeployer) DeployFile(_ context.Context, t *deploy.Target, name string, content []byte) (string, error) {
	return `C:\Windows\Temp\` + name, os.WriteFile(filepath.Join(d.root, "Temp", name), content, 0o600)
}

type grantAuth struct{}

func (grantAuth) Authenticate(_ context.Context, host string, cr adauth.Credentials) (*adauth.Grant, error) {
	return &adauth.Grant{Addr: host, Credentials: cr}, nil
}

// scmLauncher and wmiLauncher adapt the real launchers (over TCP, with no
// SMB session) to the session.
type scmLauncher struct {
	creds adauth.Credentials
	emu   string // winemu's address
}

func (scmLauncher) Name() string { return "scm" }
func (l scmLauncher) Launch(ctx context.Context, t *deploy.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	rl := &remotereg.Launcher{Transports: []remotereg.Transport{remotereg.TransportTCP}, Backoff: remotereg.Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond}}
	return rl.Launch(ctx, &deploy.Target{Session: t.Session, Addr: l.emu, Grant: &adauth.Grant{Addr: l.emu, Credentials: l.creds}, Journal: t.Journal}, spec)
}

type wmiLauncher struct {
	creds adauth.Credentials
	emu   string
}

func (wmiLauncher) Name() string { return "wmi" }
func (l wmiLauncher) Launch(ctx context.Context, t *deploy.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	return (&wmi.Launcher{}).Launch(ctx, &deploy.Target{Session: t.Session, Addr: l.emu, Grant: &adauth.Grant{Addr: l.emu, Credentials: l.creds}}, spec)
}

var (
	appletOnce sync.Once
	appletBin  string
	appletErr  error
)

func buildApplet(t *testing.T) string {
	t.Helper()
	appletOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lc-session-applet-")
		if err != nil {
			appletErr = err
			return
		}
		appletBin = filepath.Join(dir, "applet")
		out, err := exec.Command("go", "build", "-o", appletBin, "github.com/lanconnect/lanconnect/examples/applet").CombinedOutput()
		if err != nil {
			appletErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if appletErr != nil {
		t.Fatal(appletErr)
	}
	return appletBin
}

// attack is a local user of the target who reads the applet's command
// line (the service's ImagePath, or the process list for WMI) before the
// applet starts, and tries to check in with anything found there.
type attack struct {
	console string // the check-in server's address
	fp      string // its certificate, which anyone can fetch

	mu       sync.Mutex
	lines    []string
	tried    int
	accepted []string
	errs     []string
}

func (a *attack) run(kind, cmdline string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lines = append(a.lines, kind+": "+cmdline)
	// Candidate tokens: every argument, every run of token characters,
	// and whatever the applet's own flag parser makes of the line.
	cands := map[string]bool{}
	_, args, _ := winemu.ParseCommandLine(cmdline)
	for _, s := range args {
		cands[s] = true
	}
	for _, s := range regexp.MustCompile(`[A-Za-z0-9+/=_-]{8,}`).FindAllString(cmdline, -1) {
		cands[s] = true
	}
	if tk, err := checkin.ParseArgs(args); err == nil {
		cands[tk.Token] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for c := range cands {
		a.tried++
		ac, err := checkin.Dial(ctx, checkin.Ticket{Addr: a.console, Fingerprint: a.fp, Token: c}, checkin.Hello{Name: "MALLORY"})
		if err == nil {
			a.accepted = append(a.accepted, c)
			ac.Close()
			continue
		}
		if !errors.Is(err, checkin.ErrRejected) {
			a.errs = append(a.errs, err.Error())
		}
	}
}

// fingerprintOf fetches the certificate the check-in server presents, as
// anyone who can reach it can.
func fingerprintOf(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return checkin.Fingerprint(c.ConnectionState().PeerCertificates[0])
}

// A local user who reads the applet's command line (ImagePath for the
// SCM, CommandLine for WMI) as winemu received it, and tries to check in
// before the applet, has nothing to present: the line holds no run of 32
// token characters, every check-in built from it is refused (and shows
// up as a refused check-in of the session, from the target's address),
// and the real applet checks in afterwards. The applet then says goodbye
// at Close, and WMI's cleanup terminates nothing.
func TestTicketNotOnCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the applet")
	}
	applet := buildApplet(t)
	for _, method := range []string{"scm", "wmi"} {
		t.Run(method, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "Temp"), 0o755); err != nil {
				t.Fatal(err)
			}
			pass := "Adm1n-" + strconv.Itoa(rand.IntN(1e6))
			creds, err := adauth.Parse(`.\Administrator`, pass)
			if err != nil {
				t.Fatal(err)
			}
			ip := testutil.LoopbackIP()
			logs := &testutil.LockedBuffer{}
			srv := &winemu.Server{
				Users: map[string]winemu.User{"Administrator": {Password: pass, Admin: true}},
				Root:  root, NetBIOSName: "TARGET1",
				Logger:        slog.New(slog.NewTextHandler(logs, nil)),
				ProcessOutput: logs,
			}
			w, err := winemu.EnableWMI(srv, winemu.OSInfo{})
			if err != nil {
				t.Fatal(err)
			}
			a := &attack{}
			srv.BeforeStart = a.run
			ctx, cancel := context.WithCancel(context.Background())
			if err := srv.Start(ctx, ip); err != nil {
				cancel()
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cancel()
				srv.Close()
				w.Close()
				if t.Failed() {
					t.Logf("winemu log:\n%s", logs.String())
				}
			})
			var l deploy.Launcher = scmLauncher{creds, ip}
			if method == "wmi" {
				l = wmiLauncher{creds, ip}
			}
			c, err := session.New(session.Config{
				Authenticator: grantAuth{}, Credentials: creds,
				Deployer:      localDeployer{root: root, applet: applet},
				Launchers:     []deploy.Launcher{l},
				CheckinListen: net.JoinHostPort(ip, "0"),
				AppletArgs:    []string{"-heartbeat", "1s"},
				Timeouts:      session.Timeouts{Checkin: 30 * time.Second, Cleanup: 30 * time.Second},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			a.console, a.fp = c.CheckinAddr(), fingerprintOf(t, c.CheckinAddr())

			s := c.Connect(context.Background(), discovery.Host{Name: "TARGET1", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
			var refused []session.Event
			var r session.Result
			for e := range s.Events() {
				if e.Kind == session.EventRefused {
					refused = append(refused, e)
				}
				if e.State == session.Running {
					r = s.Result()
					break
				}
				if e.State.Terminal() {
					t.Fatalf("session ended: %v %v", e.State, e.Err)
				}
			}
			a.mu.Lock()
			lines, tried, accepted, errs := a.lines, a.tried, a.accepted, a.errs
			a.mu.Unlock()
			if len(lines) != 1 {
				t.Fatalf("command lines seen: %q", lines)
			}
			if m := secretRun.FindString(lines[0]); m != "" {
				t.Fatalf("command line %q has a run of %d token characters: %q", lines[0], len(m), m)
			}
			if tried == 0 || len(accepted) != 0 || len(errs) != 0 {
				t.Fatalf("attack tried %d, accepted %q, other errors %q", tried, accepted, errs)
			}
			// Each refused try is an event of the session, from the
			// target's own address.
			if len(refused) != min(tried, checkin.MaxRefusals) {
				t.Fatalf("%d refused events for %d tries", len(refused), tried)
			}
			for _, e := range refused {
				if ap, err := netip.ParseAddrPort(e.Peer); err != nil || ap.Addr().String() != "127.0.0.1" || !errors.Is(e.Err, session.ErrCheckinRefused) {
					t.Fatalf("refused event peer %q err %v", e.Peer, e.Err)
				}
			}
			if r.Applet == nil || r.Applet.Name == "MALLORY" || r.Method != method {
				t.Fatalf("running with %+v via %s", r.Applet, r.Method)
			}
			if _, err := os.Stat(filepath.Join(root, "Temp", s.ID()+".ticket")); !os.IsNotExist(err) {
				t.Fatalf("ticket file not removed by the applet: %v", err)
			}
			cl, err := s.Close(context.Background())
			if err != nil || !cl.Clean() || !cl.AppletStopped {
				t.Fatalf("close: %+v %v", cl, err)
			}
			if method == "wmi" {
				if n := w.Terminated(); len(n) != 0 {
					t.Fatalf("Terminate called after the applet's goodbye: %v", n)
				}
			}
			// The applet exits by itself after its goodbye.
			deadline := time.Now().Add(10 * time.Second)
			for _, p := range w.Processes() {
				for p.Running {
					if time.Now().After(deadline) {
						t.Fatalf("applet still running: %+v", p)
					}
					time.Sleep(20 * time.Millisecond)
					for _, q := range w.Processes() {
						if q.PID == p.PID {
							p = q
						}
					}
				}
			}
		})
	}
}
