package testlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lab is a running lab: a bridge with a /24, and targets, a DC and a client
// namespace on it. Start creates one and Close removes all of it. A Lab is
// safe for concurrent use; its exported fields must not be modified.
type Lab struct {
	ID        string       // unique per lab; prefixes namespace, link, user and group names
	Dir       string       // temporary directory holding every path of every daemon
	Bridge    string       // bridge link name in the root namespace
	Prefix    netip.Prefix // the lab /24 (from 10.0.0.0/8, checked unused)
	HostAddr  netip.Addr   // the root namespace's address on the bridge
	Workgroup string       // the targets' workgroup
	Targets   []*Target
	DC        *DC    // nil unless requested
	Client    *Netns // nil unless requested

	log *slog.Logger
	// dcTmpl is the DC template the lab started from, memberTmpl the
	// member template it used (nil: members are joined for real).
	dcTmpl     string
	memberTmpl *memberTemplate
	mu         sync.Mutex
	state      State
	procs      []*Process
	closed     bool
	timings    Timings
}

var (
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,14}$`)
	memberNameRE = regexp.MustCompile(`(?i)^LCMEMBER[0-9]+$`)
)

func (o *Options) validate() error {
	if len(o.Targets) > 200 {
		return fmt.Errorf("%w: %d targets (at most 200)", ErrBadOptions, len(o.Targets))
	}
	seen := map[string]bool{}
	for i, t := range o.Targets {
		if !t.Variant.Valid() {
			return fmt.Errorf("%w: target %d: unknown variant %q", ErrBadOptions, i, string(t.Variant))
		}
		if t.NoSMB && t.NoNmbd && !t.Bare {
			return fmt.Errorf("%w: target %d: NoSMB and NoNmbd leave nothing to run (Bare says so on purpose)", ErrBadOptions, i)
		}
		if t.DomainMember && (o.DC == nil || t.Bare || t.NoSMB || t.Variant == GuestOnly) {
			return fmt.Errorf("%w: target %d: a domain member needs Options.DC and smbd, and cannot be guest-only", ErrBadOptions, i)
		}
		if t.ResidentRPC && (t.Bare || t.NoSMB || t.DomainMember) {
			return fmt.Errorf("%w: target %d: ResidentRPC needs smbd and is not for domain members", ErrBadOptions, i)
		}
		if t.Name != "" && memberNameRE.MatchString(t.Name) {
			return fmt.Errorf("%w: target %d: names LCMEMBER<n> are reserved for unnamed domain members", ErrBadOptions, i)
		}
		if t.Name != "" {
			if !nameRE.MatchString(t.Name) {
				return fmt.Errorf("%w: target %d: NetBIOS name %q (1-15 letters, digits, hyphens)", ErrBadOptions, i, t.Name)
			}
			if seen[strings.ToUpper(t.Name)] {
				return fmt.Errorf("%w: duplicate target name %q", ErrBadOptions, t.Name)
			}
			seen[strings.ToUpper(t.Name)] = true
		}
	}
	if o.Workgroup != "" && !nameRE.MatchString(o.Workgroup) {
		return fmt.Errorf("%w: workgroup %q (1-15 letters, digits, hyphens)", ErrBadOptions, o.Workgroup)
	}
	if o.DC != nil {
		if o.DC.ClockSkew != 0 {
			if _, err := exec.LookPath("faketime"); err != nil {
				return fmt.Errorf("%w: DC clock skew needs faketime (run scripts/setup.sh as root)", ErrUnavailable)
			}
		}
		if o.DC.Computers < 0 || o.DC.Computers > 100000 {
			return fmt.Errorf("%w: %d computers", ErrBadOptions, o.DC.Computers)
		}
		if o.DC.Realm != "" && !regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`).MatchString(o.DC.Realm) {
			return fmt.Errorf("%w: realm %q", ErrBadOptions, o.DC.Realm)
		}
		if o.DC.Domain != "" && !nameRE.MatchString(o.DC.Domain) {
			return fmt.Errorf("%w: domain %q", ErrBadOptions, o.DC.Domain)
		}
	}
	return nil
}

// Available returns nil if the lab can run here: root, network namespaces,
// iproute2 and the Samba target tools. Otherwise it returns an error that
// matches ErrUnavailable and says why. It does not check the AD DC tools;
// Start does when a DC is requested.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (network namespaces, Samba daemons)", ErrUnavailable)
	}
	if err := lookTools("ip", "unshare", "smbd", "nmbd", "smbpasswd", "net", "useradd", "userdel", "groupadd", "groupdel"); err != nil {
		return err
	}
	if out, err := exec.Command("unshare", "--net", "true").CombinedOutput(); err != nil {
		return fmt.Errorf("%w: cannot create a network namespace: %v %s", ErrUnavailable, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// AvailableDC is like Available, and also checks the tools that a lab with
// an AD DC needs (samba, samba-tool, and ldbsearch and ldbmodify from
// ldb-tools).
func AvailableDC() error {
	if err := Available(); err != nil {
		return err
	}
	return lookTools("samba", "samba-tool", "ldbsearch", "ldbmodify")
}

func lookTools(names ...string) error {
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s (run scripts/setup.sh as root)", ErrUnavailable, strings.Join(missing, ", "))
	}
	return nil
}

// New starts a lab for a test and closes it in t.Cleanup. If the lab
// cannot run here it skips the test, or fails it when CI=true or
// LANCONNECT_LAB=require. It logs start-up and teardown times. A nil
// opts.Logger logs to the test's output.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	check := Available
	if opts.DC != nil {
		check = AvailableDC
	}
	if err := check(); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("LANCONNECT_LAB") == "require" {
			t.Fatalf("lab required but unavailable: %v", err)
		}
		t.Skipf("lab unavailable: %v", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// Generous: a first DC provisioning or a large computers template on a
	// loaded machine takes minutes; go test's own -timeout still applies.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	l, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("lab start: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
		t.Logf("lab %s: %s", l.ID, l.Timings())
	})
	t.Logf("lab %s up: %s", l.ID, l.Timings())
	return l
}

// Start creates a lab as opts describes and waits until every daemon
// answers: targets on TCP 445 (unless NoSMB) and UDP 137 (unless NoNmbd),
// the DC with an LDAPS handshake verified against the lab CA. Before
// that it cleans up labs whose owner process is gone. On error it removes
// whatever it created. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*Lab, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.DC != nil {
		if err := AvailableDC(); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	idb := make([]byte, 3)
	var id string
	for {
		_, _ = rand.Read(idb)
		id = "lc" + hex.EncodeToString(idb)
		if _, err := os.Stat(StatePath(id)); errors.Is(err, os.ErrNotExist) && !nsExists(id+"-t0") && !linkExists(id+"br") {
			break
		}
	}
	dir, err := os.MkdirTemp("", "lanconnect-lab-"+id+"-")
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	_ = os.MkdirAll(filepath.Join(dir, "log"), 0o755)
	l := &Lab{
		ID:     id,
		Dir:    dir,
		Bridge: id + "br",
		log:    log.With("lab", id),
	}
	l.Workgroup = strings.ToUpper(opts.Workgroup)
	if l.Workgroup == "" {
		l.Workgroup = "LCWG" + strings.ToUpper(hex.EncodeToString(idb[:2]))
	}
	l.state = State{ID: id, OwnerPID: os.Getpid(), OwnerStart: procStartTime(os.Getpid()), OwnerCmd: opts.Owner, Created: time.Now().UTC(), Dir: dir}
	if l.state.OwnerCmd == "" {
		l.state.OwnerCmd = filepath.Base(os.Args[0])
	}
	if err := l.saveState(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := l.setupNetwork(ctx, opts); err != nil {
		_ = l.Close()
		return nil, err
	}
	l.timings.Network = time.Since(t0)
	t1 := time.Now()
	if err := l.startTargets(ctx); err != nil {
		_ = l.Close()
		return nil, err
	}
	l.timings.Targets = time.Since(t1)
	if opts.DC != nil {
		t2 := time.Now()
		if err := l.startDC(ctx, opts.DC); err != nil {
			_ = l.Close()
			return nil, err
		}
		l.timings.DC = time.Since(t2)
		t3 := time.Now()
		if n, err := l.startMembers(ctx); err != nil {
			_ = l.Close()
			return nil, err
		} else if n > 0 {
			l.timings.Members = time.Since(t3)
		}
	}
	l.timings.Start = time.Since(t0)
	l.mu.Lock()
	l.state.Summary = l.summary()
	err = l.state.save()
	l.mu.Unlock()
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	l.log.Info("lab up", "prefix", l.Prefix, "targets", len(l.Targets), "dc", l.DC != nil, "took", l.timings.Start)
	return l, nil
}

// setupNetwork, under the global lock: cleans stale labs, chooses the /24,
// creates the bridge, the namespaces and the host users, recording each in
// the state file before creating it.
func (l *Lab) setupNetwork(ctx context.Context, opts Options) error {
	unlock, err := globalLock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if ids, err := cleanupStaleLocked(ctx); err != nil {
		l.log.Warn("stale lab cleanup", "labs", ids, "err", err)
	} else if len(ids) > 0 {
		l.log.Info("cleaned stale labs", "labs", ids)
	}
	used, err := usedPrefixes(ctx)
	if err != nil {
		return err
	}
	p, err := chooseSubnet(used)
	if err != nil {
		return err
	}
	l.Prefix = p
	l.HostAddr = hostAddr(p, 1)
	l.state.Prefix = p.String()
	l.state.Bridge = l.Bridge
	if err := l.saveState(); err != nil {
		return err
	}
	if err := l.createBridge(ctx); err != nil {
		return err
	}
	addNs := func(suffix string, octet byte) (*Netns, error) {
		n := &Netns{Name: l.ID + "-" + suffix, Addr: hostAddr(p, octet), lab: l}
		host := l.ID + suffix
		l.mu.Lock()
		l.state.Netns = append(l.state.Netns, n.Name)
		l.state.Links = append(l.state.Links, host)
		l.mu.Unlock()
		if err := l.saveState(); err != nil {
			return nil, err
		}
		return n, l.createNetns(ctx, n.Name, host, n.Addr)
	}
	// Addresses: .1 host, .2 DC, .3 client, .10 and up targets.
	if opts.DC != nil {
		n, err := addNs("dc", 2)
		if err != nil {
			return err
		}
		l.DC = &DC{Netns: *n}
		l.DC.lab = l
	}
	if opts.Client {
		n, err := addNs("cl", 3)
		if err != nil {
			return err
		}
		l.Client = n
		// DNS in the client namespace goes to the DC if there is one, so
		// it looks like a domain LAN; otherwise to its own loopback, so no
		// lookup leaves the lab.
		ns := "127.0.0.1"
		if l.DC != nil {
			ns = l.DC.Addr.String()
		}
		etc := filepath.Join("/etc/netns", n.Name)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+ns+"\n"), 0o644); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
	}
	if len(opts.Targets) > 0 {
		if err := l.createUsers(ctx); err != nil {
			return err
		}
	}
	members := 0
	for i, spec := range opts.Targets {
		n, err := addNs(fmt.Sprintf("t%d", i), byte(10+i))
		if err != nil {
			return err
		}
		name := strings.ToUpper(spec.Name)
		if name == "" && spec.DomainMember {
			// Fixed, so that the joined state can be cached (labs are
			// isolated from each other, as their DCs' names are).
			name = fmt.Sprintf("LCMEMBER%d", members)
		}
		if spec.DomainMember {
			members++
		}
		if name == "" {
			name = fmt.Sprintf("LCT%s%02d", strings.ToUpper(l.ID[2:6]), i)
		}
		t := &Target{
			Netns:       *n,
			NetBIOSName: name,
			Workgroup:   l.Workgroup,
			Variant:     spec.Variant,
			NoSMB:       spec.NoSMB || spec.Bare,
			NoNmbd:      spec.NoNmbd || spec.Bare,
			Member:      spec.DomainMember,
			ResidentRPC: spec.ResidentRPC,
			Admin:       Account{User: l.ID + "-admin", Password: randomPassword()},
			User:        Account{User: l.ID + "-user", Password: randomPassword()},
			dir:         filepath.Join(l.Dir, fmt.Sprintf("t%d", i)),
			adminGrp:    l.ID + "-admins",
		}
		t.lab = l
		l.Targets = append(l.Targets, t)
	}
	return nil
}

// createUsers creates the lab's host users and admin group, which every
// target's password database refers to (with a password per target).
func (l *Lab) createUsers(ctx context.Context) error {
	grp, admin, user := l.ID+"-admins", l.ID+"-admin", l.ID+"-user"
	l.mu.Lock()
	l.state.Groups = append(l.state.Groups, grp)
	l.state.Users = append(l.state.Users, admin, user)
	l.mu.Unlock()
	if err := l.saveState(); err != nil {
		return err
	}
	if _, err := run(ctx, nil, nil, "groupadd", grp); err != nil {
		return err
	}
	if _, err := run(ctx, nil, nil, "useradd", "-M", "-N", "-g", grp, "-d", "/nonexistent", "-s", "/usr/sbin/nologin", admin); err != nil {
		return err
	}
	_, err := run(ctx, nil, nil, "useradd", "-M", "-N", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", user)
	return err
}

func (l *Lab) saveState() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.save()
}

// track records a process so that Close stops it.
func (l *Lab) track(p *Process) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.procs = append(l.procs, p)
	l.state.PIDs = append(l.state.PIDs, p.Pid())
	return l.state.save()
}

// Timings returns the measured start-up and (after Close) teardown times.
func (l *Lab) Timings() Timings {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.timings
}

// StatePath returns the path of the lab's state file.
func (l *Lab) StatePath() string { return StatePath(l.ID) }

// Close stops every process of the lab by PID (tracked processes first,
// then anything left in its namespaces, such as samba-dcerpcd), deletes
// its namespaces, links, host users and groups, its directory and its
// state file. It is idempotent: later calls return nil.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	st := l.state
	l.mu.Unlock()
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Stop() }()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Cleanup(ctx, &st)
	l.mu.Lock()
	l.timings.Close = time.Since(t0)
	l.mu.Unlock()
	l.log.Info("lab closed", "took", time.Since(t0), "err", err)
	return err
}

// summary describes the lab in a few lines, without secrets.
func (l *Lab) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s: bridge %s, %s, host %s, dir %s\n", l.ID, l.Bridge, l.Prefix, l.HostAddr, l.Dir)
	for _, t := range l.Targets {
		what := "smbd+nmbd"
		switch {
		case t.NoSMB && t.NoNmbd:
			what = "bare"
		case t.NoSMB:
			what = "nmbd only"
		case t.NoNmbd:
			what = "smbd only"
		}
		if t.Member {
			what += ", member " + t.FQDN
		}
		fmt.Fprintf(&b, "  target %-15s %-15s workgroup %s, %s, %s, admin %s, user %s, netns %s\n",
			t.NetBIOSName, t.Addr, t.Workgroup, t.Variant, what, t.Admin.User, t.User.User, t.Name)
	}
	if d := l.DC; d != nil {
		fmt.Fprintf(&b, "  dc     %-15s %-15s realm %s, domain %s, admin %s, %d computers under %s, CA %s, netns %s\n",
			d.Hostname, d.Addr, d.Realm, d.Domain, d.Admin.User, len(d.Computers), d.ComputersOU, d.CAFile, d.Name)
	}
	if c := l.Client; c != nil {
		fmt.Fprintf(&b, "  client %-15s %-15s netns %s\n", "", c.Addr, c.Name)
	}
	return b.String()
}

// String describes the lab in a few lines: its network, targets, DC and
// client, with user names but never passwords.
func (l *Lab) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.summary()
}

// randomPassword returns a random password that also meets AD complexity.
func randomPassword() string {
	const alnum = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = alnum[int(c)%len(alnum)]
	}
	return "Lc7-" + string(out)
}
