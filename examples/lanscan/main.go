package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/cliutil"
	"github.com/lanconnect/lanconnect/netbios"
)

const usage = `usage: lanscan [flags] [TARGET...]

Streams the computers found on the LAN, as a table that shows each computer
once (redrawn in place on a terminal, printed once its sources answered when
piped), or as NDJSON with -json. A TARGET is an IPv4 address (10.0.0.5), a
CIDR (10.0.0.0/24) or a range (10.0.0.5-10.0.0.40). With no TARGET, lanscan
sweeps the IPv4 subnets of the local interfaces (each capped at a /22) and
sends broadcast name queries on them.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	tty := terminal{stderr: isTerminal(os.Stderr), stdout: isTerminal(os.Stdout), stdin: isTerminal(os.Stdin),
		size: func() (int, int) {
			w, h, err := term.GetSize(int(os.Stdout.Fd()))
			if err != nil {
				return 0, 0
			}
			return w, h
		}}
	code := runTerm(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, tty)
	stop()
	os.Exit(code)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// terminal says which of lanscan's streams are terminals.
type terminal struct {
	stderr bool // the progress line is drawn
	stdout bool // the table is redrawn in place (liveTable)
	stdin  bool // a filter typed with -interactive is echoed
	// size returns stdout's width and height (zero when unknown).
	size func() (width, height int)
}

// run is lanscan without the process around it, with stdout and stdin not
// terminals and stderr one when terminal is set. It returns the exit
// status: 0 when the scan completed, 1 when a source failed or the scan was
// interrupted, 2 for bad flags or targets.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, terminal bool) int {
	return runTerm(ctx, args, stdin, stdout, stderr, terminalOf(terminal))
}

func terminalOf(stderr bool) terminal { return terminal{stderr: stderr} }

// runTerm is run with each stream's kind given.
func runTerm(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, tty terminal) int {
	return runOwning(ctx, args, stdin, stdout, stderr, tty, nil)
}

// runOwning is runTerm. lanscan owns what its sources open (the Kerberos
// ticket cache of -ldap-bind kerberos) and closes it, last opened first,
// when it returns, whatever the exit status: after the scan, after a
// failed source, and after a flag error found once something was opened.
// Discovery is cancelled first, so nothing uses what is closed. wrap, when
// not nil, is given each opened resource and returns the one to close in
// its place (tests count the Close calls with it).
func runOwning(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, tty terminal, wrap func(io.Closer) io.Closer) int {
	fs := flag.NewFlagSet("lanscan", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		filterExpr = fs.String("filter", "", "show only hosts matching `EXPR` (name or domain substring or glob, IP, CIDR, range, domain:, os:, source:; space = AND, comma = OR)")
		timeout    = fs.Duration("timeout", netbios.DefaultTimeout, "the longest a host gets to `answer`, retries included (less once hosts answered: at least a quarter of it)")
		rate       = fs.Int("rate", netbios.DefaultRate, "packets per `second`")
		retries    = fs.Int("retries", netbios.DefaultRetries, "repeats to a host that does not `answer`")
		jsonOut    = fs.Bool("json", false, "write NDJSON: one object per host update")
		live       = fs.Bool("interactive", false, "read new filter expressions from stdin, one per line, while the scan runs")
	)
	srcs := sources()
	for _, s := range srcs {
		s.flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "lanscan: %v (see lanscan -h)\n", err)
		return 2
	}
	if *rate <= 0 {
		fmt.Fprintf(stderr, "lanscan: -rate must be positive, not %d\n", *rate)
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "lanscan: -timeout must be positive, not %v\n", *timeout)
		return 2
	}
	if *retries < 0 {
		fmt.Fprintf(stderr, "lanscan: -retries must not be negative, not %d\n", *retries)
		return 2
	}
	f, err := discovery.ParseFilter(*filterExpr)
	if err != nil {
		fmt.Fprintf(stderr, "lanscan: -filter: %v\n", err)
		return 2
	}
	cfg := &config{
		targets: fs.Args(),
		timeout: *timeout,
		rate:    *rate,
		retries: *retries,
		json:    *jsonOut,
		filter:  f,
		stderr:  stderr,
		wrap:    wrap,
	}
	defer cfg.closeOwned()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before closeOwned: the discoverers stop first
	if cfg.retries == 0 {
		cfg.retries = -1 // the netbios package reads 0 as "default"
	}
	prog := &progressLine{w: stderr, enabled: tty.stderr && !cfg.json}
	cfg.progress = prog.set
	ds, err := buildDiscoverers(srcs, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "lanscan: %v\n", err)
		return 2
	}
	if len(ds) == 0 {
		fmt.Fprintln(stderr, "lanscan: every source is disabled")
		return 2
	}

	view := discovery.NewView(ctx, discovery.Merge(ctx, ds...), f)
	var out printer
	switch {
	case cfg.json:
		out = &jsonPrinter{enc: json.NewEncoder(stdout)}
	case tty.stdout:
		out = newLiveTable(stdout, tty.size)
	default:
		var names []string
		for _, d := range ds {
			if n, ok := d.(interface{ Name() string }); ok {
				names = append(names, n.Name())
			}
		}
		out = newTablePrinter(stdout, names...)
	}
	// say writes one line on stderr, below the table. On a terminal that
	// shows the table too, the table counts the lines it takes.
	say := func(s string) {
		prog.clear()
		fmt.Fprintln(stderr, s)
		if tty.stderr && tty.stdout {
			out.lines(screenLines(s, tty.size))
		}
		prog.draw()
	}
	// Filter changes typed on stdin come back as notes, so that this loop
	// alone writes to the terminal.
	notes := make(chan string)
	typed := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	if *live {
		go readFilters(stdin, view, typed, notes, done)
	}
	failed := false
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	events := view.Events()
	for events != nil {
		select {
		case e, ok := <-events:
			if !ok {
				events = nil
				break
			}
			switch e.Kind {
			case discovery.Show, discovery.Hide:
				prog.clear()
				if err := out.print(e); err != nil {
					fmt.Fprintf(stderr, "lanscan: %v\n", err)
					return 1
				}
				if e.Kind == discovery.Show {
					prog.found(e.ID)
				}
				prog.draw()
			case discovery.SourceFinished:
				if e.Err != nil {
					say("lanscan: " + cliutil.Safe(e.Err.Error()))
					failed = true
				}
				prog.clear()
				if err := out.sourceDone(e.Source); err != nil {
					fmt.Fprintf(stderr, "lanscan: %v\n", err)
					return 1
				}
				prog.draw()
			}
		case <-typed:
			// The terminal echoed what was typed, on a line of its own
			// (or more): rows drawn so far can no longer be found.
			if tty.stdin {
				out.untracked()
			}
		case n := <-notes:
			say(n)
		case <-tick.C:
			prog.draw()
		}
	}
	prog.clear()
	if err := out.flush(); err != nil {
		fmt.Fprintf(stderr, "lanscan: %v\n", err)
		return 1
	}
	for _, s := range summaries(cfg) {
		fmt.Fprintln(stderr, s)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "lanscan: interrupted")
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

// screenLines is how many terminal lines s takes (one, when the width is
// unknown).
func screenLines(s string, size func() (int, int)) int {
	w := 0
	if size != nil {
		w, _ = size()
	}
	n := columns(s)
	if w <= 0 || n <= w {
		return 1
	}
	return (n + w - 1) / w
}

// readFilters applies each line of r as the view's new filter (the live
// filter of a console, on the command line). A bad line is reported and
// the filter stays as it was. It returns at the end of r.
func readFilters(r io.Reader, v *discovery.View, typed chan<- struct{}, notes chan<- string, done <-chan struct{}) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		select {
		case typed <- struct{}{}:
		case <-done:
			return
		}
		f, err := discovery.ParseFilter(sc.Text())
		note := fmt.Sprintf("lanscan: filter now %q", f.String())
		if err != nil {
			note = fmt.Sprintf("lanscan: filter not changed: %v", err)
		} else {
			v.SetFilter(f)
		}
		select {
		case notes <- note:
		case <-done:
			return
		}
	}
}

// progressLine is the terminal's last line while the scan runs.
type progressLine struct {
	w       io.Writer
	enabled bool

	mu    sync.Mutex
	p     netbios.Progress
	shown map[discovery.HostID]bool
	drawn bool
}

func (l *progressLine) set(p netbios.Progress) {
	l.mu.Lock()
	l.p = p
	l.mu.Unlock()
}

func (l *progressLine) found(id discovery.HostID) {
	l.mu.Lock()
	if l.shown == nil {
		l.shown = make(map[discovery.HostID]bool)
	}
	l.shown[id] = true
	l.mu.Unlock()
}

func (l *progressLine) draw() {
	if !l.enabled {
		return
	}
	l.mu.Lock()
	p, n := l.p, len(l.shown)
	l.mu.Unlock()
	pct := 100.0
	if p.Total > 0 {
		pct = 100 * float64(p.Swept) / float64(p.Total)
	}
	fmt.Fprintf(l.w, "\r\033[K  scanning: %d/%d addresses (%.0f%%), %d packets, %d hosts", p.Swept, p.Total, pct, p.Sent, n)
	l.drawn = true
}

func (l *progressLine) clear() {
	if l.enabled && l.drawn {
		fmt.Fprint(l.w, "\r\033[K")
		l.drawn = false
	}
}

// hostJSON is the NDJSON schema documented in docs/lanscan.md.
type hostJSON struct {
	ID        uint64   `json:"id"`
	Removed   bool     `json:"removed,omitempty"`
	Name      string   `json:"name"`
	DNSName   string   `json:"dns_name"`
	Addrs     []string `json:"addrs"`
	Domain    string   `json:"domain"`
	OS        string   `json:"os"`
	OSVersion string   `json:"os_version"`
	MAC       string   `json:"mac"`
	Roles     []string `json:"roles"`
	Sources   []string `json:"sources"`
	FirstSeen string   `json:"first_seen"`
	LastSeen  string   `json:"last_seen"`
	// Directory facts (ldap.go): the DN, whether the account is enabled
	// (null when unknown) and lastLogonTimestamp (RFC 3339, "" when unknown).
	DN        string `json:"dn"`
	Enabled   *bool  `json:"enabled"`
	LastLogon string `json:"last_logon"`
	// LAPS is the LAPS format whose password the -user account may read
	// (legacy, windows, windows-encrypted); omitted when none. Never the
	// password.
	LAPS string `json:"laps,omitempty"`
	// SMB facts (smb.go): the negotiated dialect ("3.1.1", "" when not
	// probed) and whether the server requires signing (null when unknown).
	Dialect         string `json:"dialect"`
	SigningRequired *bool  `json:"signing_required"`
	// Trust in names (discovery.Host): the addresses DNS or the directory
	// reported, and why the host's name is in doubt (it claims the name
	// of a host that DNS or the directory places elsewhere). Both are
	// omitted when empty.
	TrustedAddrs []string `json:"trusted_addrs,omitempty"`
	Conflict     string   `json:"conflict,omitempty"`
}

func toJSON(id discovery.HostID, h discovery.Host) hostJSON {
	j := hostJSON{
		ID: uint64(id), Name: h.Name, DNSName: h.DNSName, Domain: h.Domain, OS: h.OS, OSVersion: h.OSVersion,
		Addrs: []string{}, Roles: []string{}, Sources: []string{},
	}
	for _, a := range h.Addrs {
		j.Addrs = append(j.Addrs, a.String())
	}
	for _, r := range h.Roles {
		j.Roles = append(j.Roles, string(r))
	}
	for _, s := range h.Sources {
		j.Sources = append(j.Sources, string(s))
	}
	if len(h.MAC) > 0 {
		j.MAC = h.MAC.String()
	}
	if !h.FirstSeen.IsZero() {
		j.FirstSeen = h.FirstSeen.UTC().Format(time.RFC3339Nano)
	}
	if !h.LastSeen.IsZero() {
		j.LastSeen = h.LastSeen.UTC().Format(time.RFC3339Nano)
	}
	setDirectoryJSON(&j, h)
	j.Dialect, j.SigningRequired = h.Dialect, h.SigningRequired
	for _, a := range h.TrustedAddrs {
		j.TrustedAddrs = append(j.TrustedAddrs, a.String())
	}
	j.Conflict = h.Conflict
	return j
}

type jsonPrinter struct{ enc *json.Encoder }

func (p *jsonPrinter) print(e discovery.ViewEvent) error {
	j := toJSON(e.ID, e.Host)
	j.Removed = e.Kind == discovery.Hide
	return p.enc.Encode(j)
}

func (p *jsonPrinter) sourceDone(string) error { return nil }
func (p *jsonPrinter) lines(int)               {}
func (p *jsonPrinter) untracked()              {}
func (p *jsonPrinter) flush() error            { return nil }
