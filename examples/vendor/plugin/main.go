// Command plugin shows a vendor's own pieces plugged into a lanconnect
// session, written against the public packages alone:
//
//   - hostFile, a discovery.Discoverer that reads the computers from the
//     vendor's inventory export (one "NAME ADDRESS" per line);
//   - auditLauncher, a deploy.Launcher that wraps another launcher: it
//     journals an entry of its own kind in the session's journal before
//     each launch, records the launch in the vendor's audit trail, and, as
//     a deploy.Undoer, closes the audit entry when the session's cleanup
//     undoes the journal.
//
// standard.Apply wires lanconnect's pieces; the audit wraps each of its
// launchers (SCM, then WMI):
//
//	plugin -user 'CORP\helpdesk' -applet dist/acme.exe -hosts inventory.txt -console 10.0.0.5:0 PC1
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
)

// hostFile lists the computers of an inventory file.
type hostFile struct{ path string }

// Discover implements discovery.Discoverer: it sends one Host per line
// "NAME ADDRESS" and returns. The addresses come from the vendor's own
// inventory, so they are trusted (TrustedAddrs).
func (h hostFile) Discover(ctx context.Context, out chan<- discovery.Host) error {
	f, err := os.Open(h.path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 2 {
			return fmt.Errorf("%s:%d: want NAME ADDRESS", h.path, line)
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			return fmt.Errorf("%s:%d: %w", h.path, line, err)
		}
		select {
		case out <- discovery.Host{Name: strings.ToUpper(fields[0]), Addrs: []netip.Addr{a}, TrustedAddrs: []netip.Addr{a}}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return sc.Err()
}

// kindAudit is the journal kind of auditLauncher's entries.
const kindAudit = "acme.audit"

// auditTrail is the vendor's record of who started what where. A real one
// would be a database; this one keeps lines in memory.
type auditTrail struct {
	mu    sync.Mutex
	lines []string
	open  map[string]bool // by session ID
}

func (a *auditTrail) add(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lines = append(a.lines, fmt.Sprintf(format, args...))
}

// auditLauncher records each launch in the audit trail, then lets next
// launch.
type auditLauncher struct {
	next  deploy.Launcher
	trail *auditTrail
}

// Name implements deploy.Launcher: the wrapped launcher's name, so that
// the session reports the method that really started the applet.
func (l auditLauncher) Name() string { return l.next.Name() }

// Launch implements deploy.Launcher. The audit entry is journaled before
// anything else, so that the session's cleanup closes it whatever
// happens next.
func (l auditLauncher) Launch(ctx context.Context, t *deploy.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	data, _ := json.Marshal(t.Session)
	if t.Journal != nil {
		if _, err := t.Journal.Record(ctx, deploy.Artifact{Kind: kindAudit, Addr: t.Addr, Name: t.Session, Data: data, Note: "audit entry"}); err != nil {
			return nil, err
		}
	}
	l.trail.mu.Lock()
	if l.trail.open == nil {
		l.trail.open = map[string]bool{}
	}
	l.trail.open[t.Session] = true
	l.trail.mu.Unlock()
	l.trail.add("open %s on %s (%s) via %s", t.Session, t.Host.Name, t.Addr, l.next.Name())
	return l.next.Launch(ctx, t, spec)
}

// Undoers implements deploy.Undoer: undoing an audit entry closes it. It
// also passes on the wrapped launcher's own undo functions.
func (l auditLauncher) Undoers(g *adauth.Grant) deploy.Undoers {
	u := deploy.Undoers{}
	if next, ok := l.next.(deploy.Undoer); ok {
		u = next.Undoers(g)
	}
	u[kindAudit] = func(_ context.Context, a deploy.Artifact) error {
		l.trail.mu.Lock()
		delete(l.trail.open, a.Name)
		l.trail.mu.Unlock()
		l.trail.add("close %s", a.Name)
		return nil
	}
	return u
}

func main() {
	user := flag.String("user", "", `account, DOMAIN\user`)
	appletPath := flag.String("applet", "", "the applet to copy and start")
	hosts := flag.String("hosts", "inventory.txt", `the inventory: one "NAME ADDRESS" per line`)
	consoleAddr := flag.String("console", "", "address:port the targets reach this console at")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	trail := &auditTrail{}
	err := func() error {
		creds, err := adauth.Parse(*user, os.Getenv("LC_PASSWORD"))
		if err != nil {
			return err
		}
		applet, err := deploy.AppletFromFile("acme.exe", "1.0", *appletPath)
		if err != nil {
			return err
		}
		cfg := session.Config{Credentials: creds, CheckinListen: "0.0.0.0:0", ConsoleAddr: *consoleAddr}
		// The audit entries are the vendor's own kind: the session's
		// cleanup undoes only what its scope allows.
		opts := standard.Options{Applet: applet, ExtraScope: deploy.Scope{kindAudit: func(deploy.Artifact) error { return nil }}}
		if err := standard.Apply(&cfg, opts); err != nil {
			return err
		}
		wire(&cfg, hostFile{*hosts}, trail)
		return run(ctx, cfg, strings.Join(flag.Args(), " "), os.Stdout)
	}()
	for _, l := range trail.lines {
		fmt.Println("audit:", l)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plugin:", err)
		os.Exit(1)
	}
}

// wire puts the vendor's pieces into a Config that standard.Apply (or a
// test double) filled: the inventory as the only discoverer, and every
// launcher wrapped by the audit.
func wire(cfg *session.Config, d discovery.Discoverer, trail *auditTrail) {
	cfg.Discoverers = []discovery.Discoverer{d}
	for i, l := range cfg.Launchers {
		cfg.Launchers[i] = auditLauncher{next: l, trail: trail}
	}
}

// run connects to the first inventory host that filter shows, waits until
// it is Running (or Failed), closes it and prints the cleanup.
func run(ctx context.Context, cfg session.Config, filter string, out io.Writer) error {
	f, err := discovery.ParseFilter(filter)
	if err != nil {
		return err
	}
	c, err := session.New(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var host discovery.Host
	for ev := range c.Hosts(vctx, f).Events() {
		if ev.Kind == discovery.Show {
			host = ev.Host
			break
		}
		if ev.Kind == discovery.Complete {
			return fmt.Errorf("no host in the inventory matches %q", filter)
		}
		if ev.Err != nil {
			return ev.Err
		}
	}
	s := c.Connect(ctx, host)
	r, err := s.Wait(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %s via %s %s\n", host.Name, r.State, r.Method, r.Diagnosis)
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer ccancel()
	cl, err := s.Close(cctx)
	for _, u := range cl.Undone {
		fmt.Fprintf(out, "%s: undone %s\n", host.Name, u)
	}
	for _, l := range cl.Left {
		fmt.Fprintf(out, "%s: left %s: %v\n", host.Name, l.What, l.Err)
	}
	return err
}
