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
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/netbios"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
)

const usage = `usage: console [flags] [TARGET...]

Serves the Connect On LAN page on http://127.0.0.1:8080 (see -listen): the
computers found on the LAN as they are found, a filter box, Connect, a
credential dialog when the SDK asks for one, and the sessions' states.

A TARGET is an IPv4 address, a CIDR or a range, as for lanscan. With no
TARGET, the NetBIOS scan sweeps the local IPv4 subnets (each capped at a
/22) and broadcasts name queries on them.

Credentials: -user with the password from $LANCONNECT_PASSWORD or
-password-stdin are tried first; when a computer refuses them, the page
asks. Passwords typed in the page are used for that Connect and not kept.

Flags:
`

// passwordEnv is the environment variable the password is read from.
const passwordEnv = "LANCONNECT_PASSWORD"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// env is what run takes from the process, so that tests can supply it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// listening, when set, receives the page's URL once it is served.
	listening func(url string)
}

type options struct {
	listen, origin string
	allowRemote    bool
	filter         string
	timeout        time.Duration
	rate, retries  int
	bind137        bool
	noNetBIOS      bool
	ldap           ldapFlags
	user           string
	passwordStdin  bool
	applet         string
	appletOS       string
	appletArch     string
	console        string
	checkin        time.Duration
	servicePrefix  string
	verbose        bool
	anyAddr        bool
}

// run is the console without the process around it. It returns the exit
// status: 0 after a clean shutdown, 1 on failure, 2 for bad usage.
func run(ctx context.Context, args []string, e env) int {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "serve the page on `host:port` (a non-loopback address needs -allow-remote)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow -listen on an address other machines can reach (anyone who reaches it can connect with your credentials)")
	fs.StringVar(&o.origin, "origin", "", "the `URL` browsers load the page from (default: http:// and the -listen address); needed when -listen has no host")
	// Discovery: the flags of lanscan.
	fs.StringVar(&o.filter, "filter", "", "initial filter `EXPR` (name substring or glob, IP, CIDR, range; space = AND, comma = OR)")
	fs.DurationVar(&o.timeout, "timeout", netbios.DefaultTimeout, "how long a host gets to `answer`, retries included")
	fs.IntVar(&o.rate, "rate", netbios.DefaultRate, "packets per `second`")
	fs.IntVar(&o.retries, "retries", netbios.DefaultRetries, "repeats to a host that does not `answer`")
	fs.BoolVar(&o.bind137, "bind137", false, "send NetBIOS requests from UDP port 137 (needs root)")
	fs.BoolVar(&o.noNetBIOS, "no-netbios", false, "do not run the NetBIOS name service scan")
	o.ldap.register(fs)
	// Connect: the flags of connect.
	fs.StringVar(&o.user, "user", "", "administrator `account` tried first: user, DOMAIN\\user, user@domain or .\\user")
	fs.BoolVar(&o.passwordStdin, "password-stdin", false, "read -user's password from the first line of standard input")
	fs.StringVar(&o.applet, "applet", "", "applet `file` to deploy (default: build examples/applet with the go tool)")
	fs.StringVar(&o.appletOS, "applet-os", "windows", "GOOS of the default applet build")
	fs.StringVar(&o.appletArch, "applet-arch", "amd64", "GOARCH of the default applet build")
	fs.StringVar(&o.console, "console", "", "check-in listen `address` host:port, as the targets reach it (default: this machine's address towards the first TARGET)")
	fs.DurationVar(&o.checkin, "checkin-timeout", session.DefaultCheckinTimeout, "how long the applet gets to check in")
	fs.BoolVar(&o.anyAddr, "checkin-any-addr", false, "accept the applet's check-in from any address, not only the target's own (targets behind NAT)")
	fs.StringVar(&o.servicePrefix, "service-prefix", "", "prefix of the service name (default: the launcher's)")
	fs.BoolVar(&o.verbose, "v", false, "log the SDK's steps (debug level)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stderr, usage)
			fs.SetOutput(e.stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(e.stderr, "console: %v (see console -h)\n", err)
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "console: "+format+"\n", a...)
		return 2
	}
	lvl := slog.LevelInfo
	if o.verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: lvl}))

	// Where the page is served.
	lhost, _, err := net.SplitHostPort(o.listen)
	if err != nil {
		return usageErr("-listen %q: %v", o.listen, err)
	}
	if !isLoopback(lhost) {
		if !o.allowRemote {
			return usageErr("-listen %s is not a loopback address: add -allow-remote if other machines should reach the console", o.listen)
		}
		if o.origin == "" && (lhost == "" || lhost == "0.0.0.0" || lhost == "::") {
			return usageErr("-listen %s has no host: give -origin http://HOST:PORT as browsers reach the console", o.listen)
		}
	}
	if o.rate <= 0 || o.timeout <= 0 || o.retries < 0 {
		return usageErr("-rate and -timeout must be positive, -retries not negative")
	}
	filter, err := discovery.ParseFilter(o.filter)
	if err != nil {
		return usageErr("-filter: %v", err)
	}

	// Credentials tried first.
	var creds adauth.Credentials
	password := e.getenv(passwordEnv)
	if o.passwordStdin {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && line == "" {
			return usageErr("-password-stdin: no password on standard input")
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if o.user != "" {
		if creds, err = adauth.Parse(o.user, password); err != nil {
			return usageErr("-user: %v", err)
		}
	}

	// Discovery.
	ds, err := discoverers(o, fs.Args(), creds, e.stderr)
	if err != nil {
		return usageErr("%v", err)
	}

	// Applet.
	appletPath := o.applet
	if appletPath == "" {
		dir, err := os.MkdirTemp("", "lanconnect-console-")
		if err != nil {
			fmt.Fprintf(e.stderr, "console: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		appletPath = filepath.Join(dir, "applet.exe")
		if err := buildApplet(ctx, appletPath, o.appletOS, o.appletArch); err != nil {
			fmt.Fprintf(e.stderr, "console: no -applet given and the example applet could not be built: %v\n", err)
			return 1
		}
	}
	applet, err := deploy.AppletFromFile("lcapplet.exe", "example", appletPath)
	if err != nil {
		return usageErr("-applet: %v", err)
	}

	// The check-in listener, where the applets dial back.
	checkinAddr := o.console
	if checkinAddr == "" {
		checkinAddr = net.JoinHostPort(localAddrTowards(fs.Args()), "0")
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintf(e.stderr, "console: %v\n", err)
		return 1
	}
	defer ln.Close()
	origin := o.origin
	if origin == "" {
		origin = "http://" + ln.Addr().String()
	}
	origin = strings.TrimSuffix(origin, "/")

	var srv *server
	cfg := session.Config{
		Discoverers: ds,
		Credentials: creds,
		Prompt: func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
			return srv.promptHook(ctx, req)
		},
		CheckinListen:      checkinAddr,
		ConsoleAddr:        checkinAddr,
		CheckinFromAnyAddr: o.anyAddr,
		Timeouts:           session.Timeouts{Checkin: o.checkin},
		Logger:             log,
	}
	// The authenticator, preflight, copy, launchers (SCM, then WMI) and
	// a journal per session.
	if err := standard.Apply(&cfg, standard.Options{Applet: applet, ServicePrefix: o.servicePrefix, Logger: log}); err != nil {
		fmt.Fprintf(e.stderr, "console: %v\n", err)
		return 1
	}
	client, err := session.New(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "console: %v\n", err)
		return 1
	}
	defer client.Close()
	srv, err = newServer(serverConfig{Client: client, Logger: log, Origin: origin, Filter: filter, Sources: len(ds)})
	if err != nil {
		return usageErr("-origin: %v", err)
	}

	hs := &http.Server{Handler: srv.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if h, _, _ := net.SplitHostPort(client.CheckinAddr()); o.console == "" && isLoopback(h) {
		log.Warn("the check-in listens on loopback, which applets on other computers cannot reach: give -console HOST:PORT", "checkin", client.CheckinAddr())
	}
	if !isLoopback(lhost) {
		log.Warn("the console is reachable from other machines: anyone who reaches it can connect to computers with the credentials typed into it", "listen", o.listen)
	}
	url := origin + "/"
	fmt.Fprintf(e.stdout, "console: serving %s (check-in on %s); Ctrl-C stops\n", url, client.CheckinAddr())
	if e.listening != nil {
		e.listening(url)
	}

	code := 0
	select {
	case <-ctx.Done():
	case err := <-served:
		fmt.Fprintf(e.stderr, "console: %v\n", err)
		code = 1
	}
	fmt.Fprintln(e.stderr, "console: closing the sessions...")
	sctx, cancel := context.WithTimeout(context.Background(), 2*session.DefaultCleanupTimeout)
	defer cancel()
	srv.shutdown(sctx)
	_ = hs.Shutdown(sctx)
	return code
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// discoverers builds the discovery sources from the lanscan flags: the
// NetBIOS scan and, with -ldap or -ldap-domain, the directory.
func discoverers(o options, targets []string, creds adauth.Credentials, stderr io.Writer) ([]discovery.Discoverer, error) {
	var ds []discovery.Discoverer
	dir, err := o.ldap.build(creds)
	if err != nil {
		return nil, err
	}
	if dir != nil {
		ds = append(ds, dir)
	}
	if o.noNetBIOS {
		if len(ds) == 0 {
			return nil, errors.New("-no-netbios leaves no discovery source: add -ldap")
		}
		return ds, nil
	}
	retries := o.retries
	if retries == 0 {
		retries = -1 // the netbios package reads 0 as "default"
	}
	sc := &netbios.Scanner{Rate: o.rate, Retries: retries, Timeout: o.timeout}
	if o.bind137 {
		sc.LocalAddr = netip.AddrPortFrom(netip.IPv4Unspecified(), netbios.DefaultPort)
	}
	var t netbios.Targets
	if len(targets) > 0 {
		if t, err = netbios.ParseTargets(targets...); err != nil {
			return nil, err
		}
	} else {
		var capped []netbios.CappedSubnet
		if t, capped, err = netbios.LocalTargets(22); err != nil {
			return nil, fmt.Errorf("%w: give a TARGET", err)
		}
		for _, c := range capped {
			fmt.Fprintf(stderr, "console: %s: %v is wider than /22: sweeping %v only\n", c.Interface, c.Subnet, c.Swept)
		}
	}
	return append(ds, discovery.Named("netbios", &netbios.Discoverer{Scanner: sc, Targets: t})), nil
}

// buildApplet builds examples/applet with the go tool.
func buildApplet(ctx context.Context, out, goos, goarch string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/lanconnect/lanconnect/examples/applet")
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

// localAddrTowards returns this machine's address on the route to the
// first target, for the check-in listener ("127.0.0.1" when there is no
// target). Connecting a UDP socket sends nothing.
func localAddrTowards(targets []string) string {
	if len(targets) == 0 {
		return "127.0.0.1"
	}
	r, err := discovery.ParseAddrRange(targets[0])
	if err != nil {
		return "127.0.0.1"
	}
	c, err := net.Dial("udp", netip.AddrPortFrom(r.From, 445).String())
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap().String()
		}
	}
	return "127.0.0.1"
}
