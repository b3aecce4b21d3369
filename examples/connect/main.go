package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/cliutil"
	"github.com/lanconnect/lanconnect/laps"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
	"github.com/lanconnect/lanconnect/wmi"
)

const usage = `usage: connect [flags] HOST...

Connects to each HOST (an IP address, or a computer name that DNS resolves, or
NetBIOS when DNS has no answer; a name that more than one address answers for
is refused, and the computer must answer under the name before credentials are
sent): authenticates as administrator (Kerberos for a domain account when the
computer's DNS name is known, else NTLM; see -auth), copies the applet to
ADMIN$, launches it (SCM through remotereg, then WMI), waits for it to check
in, then closes the session and removes everything it put on the host.

The password comes from the LANCONNECT_PASSWORD environment variable or, with
-password-stdin, from the first line of standard input. When the credentials
are refused and standard input is a terminal, connect asks for others.

With -laps -ldap URL, when the account is refused on a host (a logon failure,
or not an administrator), connect reads that host's LAPS password from the
directory (binding as -user), and retries as the host's own local account
(.\account, over NTLM: NTLM must be allowed for local accounts). Hosts must be
given by name: the password goes only to the computer that answers under it.

With -check, connect changes nothing on any host: for each HOST it reports
TCP 135, 139 and 445, the SMB dialect, signing and encryption, whether the
credentials are valid and administrator (proved without writing), the sharing
model, the NTLM level, UAC remote restrictions, the Remote Registry state (it
is never started), WMI reachability and the launch method a connect would
use, each failing item with its diagnosis. Exit status 0 when every host is
ready, 1 otherwise.

Exit status: 0 when every host reached Running (and was closed cleanly,
unless -keep), 1 otherwise, 2 for bad usage.

Flags:
`

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv:   os.Getenv,
		terminal: term.IsTerminal(int(os.Stdin.Fd())),
		progress: term.IsTerminal(int(os.Stdout.Fd())),
	})
	stop()
	os.Exit(code)
}

// env is what run takes from the process, so tests can supply it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	terminal       bool // stdin is a terminal: prompting is possible
	progress       bool // stdout is a terminal: redraw the progress bar
}

type options struct {
	user          string
	passwordStdin bool
	applets       appletFlag
	appletOS      string
	appletArch    string
	method        string
	console       string
	concurrency   int
	keep          bool
	jsonOut       bool
	verbose       bool
	checkin       time.Duration
	servicePrefix string
	params        paramFlag
	journalDir    string
	cleanup       bool
	anyAddr       bool
	laps          bool
	lapsAccount   string
	lapsKeyServer string
	dir           cliutil.DirectoryFlags
	auth          string
	kdc           string
	ccache        string
	keytab        string
	check         bool
}

// appletFlag collects -applet [OS/ARCH=]FILE: the applet's variants per
// Windows architecture, and at most one default (no OS/ARCH).
type appletFlag []appletSpec

type appletSpec struct {
	arch string // deploy.Arch386, ArchAMD64, ArchARM64; "" for the default
	path string
}

func (a *appletFlag) String() string { return "" }

func (a *appletFlag) Set(v string) error {
	spec := appletSpec{path: v}
	// OS/ARCH= only when the part before the first '=' looks like one:
	// a FILE may contain '=' (or '/') itself.
	if k, file, ok := strings.Cut(v, "="); ok {
		if goos, arch, ok := strings.Cut(k, "/"); ok && goos != "" && arch != "" && !strings.ContainsAny(k, `\.: `) && strings.Count(k, "/") == 1 {
			if goos != "windows" {
				return fmt.Errorf("OS %q: applets run on windows targets only", goos)
			}
			switch arch {
			case deploy.Arch386, deploy.ArchAMD64, deploy.ArchARM64:
			default:
				return fmt.Errorf("architecture %q: want %s, %s or %s", arch, deploy.Arch386, deploy.ArchAMD64, deploy.ArchARM64)
			}
			spec = appletSpec{arch: arch, path: file}
		}
	}
	if spec.path == "" {
		return errors.New("no FILE")
	}
	for _, s := range *a {
		if s.arch == spec.arch {
			if spec.arch == "" {
				return errors.New("more than one default applet (FILE without OS/ARCH)")
			}
			return fmt.Errorf("more than one applet for windows/%s", spec.arch)
		}
	}
	*a = append(*a, spec)
	return nil
}

// paramFlag collects -param NAME=VALUE.
type paramFlag map[string]string

func (p paramFlag) String() string { return "" }

func (p paramFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, not %q", v)
	}
	p[k] = val
	return nil
}

func run(ctx context.Context, args []string, e env) int {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	fs.StringVar(&o.user, "user", "", "administrator `account`: user, DOMAIN\\user, user@domain or .\\user")
	fs.BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.Var(&o.applets, "applet", "applet to deploy, `[OS/ARCH=]FILE`: windows/386, windows/amd64 or windows/arm64 for a variant, chosen by the target's architecture; a FILE alone is the default (repeatable; default: build examples/applet with the go tool)")
	fs.StringVar(&o.appletOS, "applet-os", "windows", "GOOS of the default applet build")
	fs.StringVar(&o.appletArch, "applet-arch", "amd64", "GOARCH of the default applet build")
	fs.StringVar(&o.method, "method", "auto", "launch `method`: auto (scm, then wmi), scm or wmi")
	fs.StringVar(&o.console, "console", "", "check-in listen `address` host:port, as the targets reach it (default: this machine's address towards the first host, port chosen)")
	fs.IntVar(&o.concurrency, "concurrency", session.DefaultConcurrency, "hosts connecting at once")
	fs.BoolVar(&o.keep, "keep", false, "leave the applet running and skip cleanup")
	fs.BoolVar(&o.jsonOut, "json", false, "write NDJSON events (host, state, step, time, method, error, diagnosis)")
	fs.BoolVar(&o.verbose, "v", false, "log the SDK's steps to standard error")
	fs.DurationVar(&o.checkin, "checkin-timeout", session.DefaultCheckinTimeout, "how long the applet gets to check in")
	fs.BoolVar(&o.anyAddr, "checkin-any-addr", false, "accept the applet's check-in from any address, not only the target's own (targets behind NAT)")
	fs.StringVar(&o.servicePrefix, "service-prefix", "", "prefix of the service name (default: the launcher's)")
	fs.StringVar(&o.journalDir, "journal", "", "keep each session's cleanup journal in `DIR` (a file per session, removed once clean)")
	fs.BoolVar(&o.cleanup, "cleanup", false, "undo the journal FILEs given as arguments instead of connecting (with -user and the password)")
	fs.BoolVar(&o.laps, "laps", false, "when -user is refused on a host, read the host's LAPS password from the directory at -ldap (binding as -user) and retry as its local account over NTLM")
	fs.StringVar(&o.lapsAccount, "laps-account", "", "the local `account` of legacy LAPS passwords, which name none (default: the built-in Administrator, RID 500, looked up over LSA when -user can log on)")
	fs.StringVar(&o.lapsKeyServer, "laps-key-server", "", "the domain controller `HOST[:PORT]` asked for the key of encrypted Windows LAPS passwords (MS-GKDI GetKey; PORT is its endpoint mapper's, default 135; default: the host of -ldap)")
	o.dir.Register(fs, "with -laps, read LAPS passwords from")
	fs.StringVar(&o.auth, "auth", "auto", "authentication `policy`: auto (Kerberos for a domain account when the computer's DNS name is known, else NTLM), kerberos or ntlm")
	fs.StringVar(&o.kdc, "kdc", "", "Kerberos KDC `address` (host or host:port; default: DNS SRV _kerberos._tcp.REALM)")
	fs.StringVar(&o.ccache, "ccache", "", "Kerberos credentials cache `FILE` (from kinit) to log on with instead of a password; the account defaults to its principal")
	fs.StringVar(&o.keytab, "keytab", "", "Kerberos keytab `FILE` with the account's keys, instead of a password (needs -user)")
	fs.BoolVar(&o.check, "check", false, "change nothing: report per HOST what a connect needs (ports, SMB, credentials, admin, sharing model, NTLM level, UAC, Remote Registry, WMI, launch method) and whether it is ready")
	o.params = paramFlag{}
	fs.Var(o.params, "param", "applet parameter `NAME=VALUE`, stored for the session under HKLM\\SOFTWARE\\LanConnect\\ExampleApplet (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stderr, usage)
			fs.SetOutput(e.stderr)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(e.stderr, "connect: %v (see connect -h)\n", err)
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "connect: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() == 0 {
		if o.cleanup {
			return usageErr("-cleanup: no journal FILE given")
		}
		return usageErr("no HOST given (see connect -h)")
	}
	if o.concurrency <= 0 {
		return usageErr("-concurrency must be positive, not %d", o.concurrency)
	}
	log := slog.New(slog.DiscardHandler)
	if o.verbose {
		log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	// Launch method. A build without the WMI launcher (newWMI nil) has
	// only the SCM.
	method, err := standard.ParseMethod(o.method)
	if err != nil {
		return usageErr("-method must be auto, scm or wmi, not %q", o.method)
	}
	var wmiLauncher *wmi.Launcher
	switch {
	case newWMI != nil:
		wmiLauncher = newWMI(log)
	case method == standard.MethodWMI:
		return usageErr("-method wmi: the WMI launcher is not available in this build")
	case method == standard.MethodAuto:
		method = standard.MethodSCM
	}
	opts := standard.Options{
		Method:        method,
		ServicePrefix: o.servicePrefix,
		JournalDir:    o.journalDir,
		Vendor:        "LanConnect",
		AppletName:    "ExampleApplet",
		WMI:           wmiLauncher,
		Resolver:      &standard.Resolver{Logger: log},
		Logger:        log,
	}

	// Authentication: the policy and the console's one Kerberos ticket
	// cache, shared by every host (one TGT per credential).
	policy, err := adauth.ParseAuthPolicy(o.auth)
	if err != nil {
		return usageErr("-auth must be auto, kerberos or ntlm, not %q", o.auth)
	}
	if policy == adauth.AuthNTLM && (o.kdc != "" || o.ccache != "" || o.keytab != "") {
		return usageErr("-kdc, -ccache and -keytab are for Kerberos; not with -auth ntlm")
	}
	if o.keytab != "" && o.user == "" {
		return usageErr("-keytab needs -user (the account whose keys it holds)")
	}
	if o.ccache != "" && o.keytab != "" {
		return usageErr("give -ccache or -keytab, not both")
	}
	kerb, err := adauth.NewKerberos(adauth.KerberosConfig{KDC: o.kdc, CCache: o.ccache, Keytab: o.keytab, Logger: log})
	if err != nil {
		return usageErr("%v", err)
	}
	defer func() {
		if st := kerb.Stats(); st.Dials > 0 {
			log.Info("kerberos KDC traffic", "as_exchanges", st.ASExchanges, "as_reqs", st.ASReqs, "tgs_reqs", st.TGSReqs, "kdc_connections", st.Dials)
		}
		_ = kerb.Close()
	}()
	opts.Authenticator = &adauth.SMBAuthenticator{Auth: policy, Kerberos: kerb, Logger: log}

	// Credentials.
	var creds adauth.Credentials
	password := e.getenv("LANCONNECT_PASSWORD")
	if o.passwordStdin {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			return usageErr("-password-stdin: no password on standard input")
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if o.ccache != "" || o.keytab != "" {
		// The ccache or keytab is the secret: a password in the
		// environment is not sent anywhere.
		password = ""
	}
	if o.user != "" {
		c, err := adauth.Parse(o.user, password)
		if err != nil {
			return usageErr("-user: %v", err)
		}
		creds = c
	} else if a := kerb.CCacheAccount(); a != "" {
		// The ccache's principal is the account; no password.
		c, err := adauth.Parse(a, "")
		if err != nil {
			return usageErr("-ccache: %v", err)
		}
		creds = c
	}
	var lapsSource *laps.Source
	switch {
	case o.laps && o.dir.URL == "":
		return usageErr("-laps needs the directory: -ldap URL")
	case o.laps && creds.IsZero():
		return usageErr("-laps needs -user DOMAIN\\user (the account that reads the LAPS passwords)")
	case o.laps:
		lapsSource = &laps.Source{Directory: o.dir.Directory(creds), Account: o.lapsAccount, Logger: log}
		if ks := o.lapsKeyServer; ks != "" {
			host, port, err := net.SplitHostPort(ks)
			if err != nil {
				host, port = strings.Trim(ks, "[]"), "0"
			}
			p, err := strconv.ParseUint(port, 10, 16)
			if host == "" || err != nil {
				return usageErr("-laps-key-server %q: want HOST or HOST:PORT", ks)
			}
			lapsSource.KeyServer, lapsSource.KeyServerPort = host, int(p)
		}
	case o.dir.Set() || o.lapsAccount != "" || o.lapsKeyServer != "":
		return usageErr("-ldap, -ldap-ca, -ldap-server-name, -laps-account and -laps-key-server need -laps")
	}
	canPrompt := e.terminal && !o.passwordStdin
	if o.check && (o.cleanup || o.keep || len(o.applets) > 0 || len(o.params) > 0 || o.journalDir != "") {
		return usageErr("-check changes nothing: not with -cleanup, -keep, -applet, -param or -journal")
	}
	if o.cleanup {
		return cleanupJournals(ctx, fs.Args(), creds, opts, log, e)
	}

	// Hosts: names are resolved by the session (DNS first, then NetBIOS).
	hosts := hostsOf(fs.Args())

	// Applet. A check copies nothing: a placeholder stands in.
	if o.check {
		opts.Applet = deploy.AppletFromBytes("lcapplet.exe", "check", []byte("MZ"))
	} else if len(o.applets) == 0 {
		dir, err := os.MkdirTemp("", "lanconnect-applet-")
		if err != nil {
			fmt.Fprintf(e.stderr, "connect: %v\n", err)
			return exitFailed
		}
		defer os.RemoveAll(dir)
		appletPath := filepath.Join(dir, "applet.exe")
		if err := cliutil.BuildApplet(ctx, appletPath, o.appletOS, o.appletArch); err != nil {
			fmt.Fprintf(e.stderr, "connect: no -applet given and the example applet could not be built: %v\n", err)
			return exitFailed
		}
		o.applets = appletFlag{{path: appletPath}}
	}
	switch {
	case o.check:
		// opts.Applet is the placeholder.
	case len(o.applets) == 1 && o.applets[0].arch == "":
		opts.Applet, err = deploy.AppletFromFile("lcapplet.exe", "example", o.applets[0].path)
		if err != nil {
			return usageErr("-applet: %v", err)
		}
	default:
		for _, s := range o.applets {
			a, err := deploy.AppletFromFile("lcapplet.exe", "example", s.path)
			if err != nil {
				return usageErr("-applet: %v", err)
			}
			a.Arch = s.arch
			opts.Applets = append(opts.Applets, a)
		}
	}

	// Check-in address.
	listen := o.console
	if listen == "" && !o.check {
		local := "127.0.0.1"
		if a, ok := firstAddr(ctx, hosts[0], opts.Resolver, log); ok {
			local = localAddrTowards(a)
		}
		listen = net.JoinHostPort(local, "0")
	}

	out := newPrinter(e.stdout, o.jsonOut, e.progress)
	out.raw = o.verbose
	var promptMu sync.Mutex
	var client *session.Client
	cfg := session.Config{
		Credentials:         creds,
		RememberCredentials: true,
		CheckinListen:       listen,
		ConsoleAddr:         listen,
		CheckinFromAnyAddr:  o.anyAddr,
		Timeouts:            session.Timeouts{Checkin: o.checkin},
		Concurrency:         o.concurrency,
		Logger:              log,
	}
	if len(o.params) > 0 {
		cfg.AppletParams = o.params
	}
	if lapsSource != nil {
		cfg.LocalAdmin = lapsSource
	}
	// The authenticator, preflight, copy, launchers and journals.
	if err := standard.Apply(&cfg, opts); err != nil {
		fmt.Fprintf(e.stderr, "connect: %v\n", err)
		return exitFailed
	}
	if canPrompt {
		cfg.Prompt = func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
			promptMu.Lock()
			defer promptMu.Unlock()
			// Another host's prompt may have supplied credentials meanwhile.
			if cur := client.Credentials(); !cur.IsZero() && cur.Account() != req.Account {
				return cur, nil
			}
			return promptTerminal(ctx, e, out, req)
		}
	}
	if o.check {
		// Nothing is launched, so nothing checks in: no listener.
		cfg.Readiness = func(context.Context, *deploy.Target, deploy.Handle) error {
			return errors.New("connect -check launches nothing")
		}
		cfg.CheckinListen, cfg.ConsoleAddr = "", ""
	}
	client, err = session.New(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "connect: %v\n", err)
		return exitFailed
	}
	defer client.Close()
	if o.check {
		return runCheck(ctx, client, hosts, o.concurrency, &checkPrinter{w: e.stdout, json: o.jsonOut})
	}
	if !o.jsonOut {
		fmt.Fprintf(e.stdout, "check-in listening on %s\n", client.CheckinAddr())
	}

	// Connect, print, close.
	var printers sync.WaitGroup
	results := client.ConnectAll(ctx, hosts, session.BulkOptions{
		Concurrency: o.concurrency,
		OnStart: func(s *session.Session) {
			printers.Add(1)
			go func() {
				defer printers.Done()
				for ev := range s.Events() {
					out.event(ev)
					if o.keep && ev.State == session.Running {
						return
					}
				}
			}()
		},
	})
	var failed atomic.Bool
	var closers sync.WaitGroup
	running, total := 0, 0
	for r := range results {
		total++
		if r.Result.State != session.Running {
			failed.Store(true)
			continue
		}
		running++
		if o.keep {
			// Hand the session over as it is (nothing undone), so that
			// client.Close, which closes the sessions still open, leaves
			// it alone; the applet's check-in connection ends when connect
			// exits.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), session.DefaultCleanupTimeout)
			_, _ = r.Session.CloseWith(cctx, session.CloseOptions{Keep: true})
			cancel()
			continue
		}
		closers.Add(1)
		go func() {
			defer closers.Done()
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*session.DefaultCleanupTimeout)
			defer cancel()
			cl, err := r.Session.Close(cctx)
			if err != nil || !cl.Clean() {
				failed.Store(true)
			}
		}()
	}
	closers.Wait()
	printers.Wait()
	if !o.jsonOut {
		fmt.Fprintf(e.stdout, "%d of %d hosts reached Running", running, total)
		if !o.keep && running > 0 {
			if failed.Load() && running == total {
				fmt.Fprint(e.stdout, "; cleanup left something behind (see above)")
			} else if running == total {
				fmt.Fprint(e.stdout, ", and were closed cleanly")
			}
		}
		fmt.Fprintln(e.stdout)
	}
	if !failed.Load() && ctx.Err() == nil {
		return exitOK
	}
	return exitFailed
}

// localAddrTowards returns this machine's address on the route to a, for
// the check-in listener. A UDP "connect" sends nothing.
func localAddrTowards(a netip.Addr) string {
	if c, err := net.Dial("udp", net.JoinHostPort(a.String(), "445")); err == nil {
		defer c.Close()
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				return ip.Unmap().String()
			}
		}
	}
	return "127.0.0.1"
}

// newWMI makes the WMI launcher; a build without one sets it to nil, and
// "-method wmi" then says that it is not available.
var newWMI = func(log *slog.Logger) *wmi.Launcher { return &wmi.Launcher{Logger: log} }
