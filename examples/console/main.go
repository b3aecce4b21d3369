package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	neturl "net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/cliutil"
	"github.com/lanconnect/lanconnect/internal/selfcert"
	"github.com/lanconnect/lanconnect/netbios"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
)

const usage = `usage: console [flags] [TARGET...]

Serves the Connect On LAN page on http://127.0.0.1:8080 (see -listen): the
computers found on the LAN as they are found, a filter box, Connect, a
credential dialog when the SDK asks for one, and the sessions' states.

At launch the console prints the page's URL with a secret made for this
launch: open that URL (the browser then keeps a cookie); requests without
the secret are refused, so other users of this machine cannot use the
console's credentials. With -allow-remote the page is served over HTTPS,
with -tls-cert/-tls-key or an ephemeral self-signed certificate whose
SHA-256 fingerprint is printed.

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
	// The password stays in this process: no child (the go tool, anything
	// a library starts) inherits it.
	password, hasPassword := os.LookupEnv(passwordEnv)
	os.Unsetenv(passwordEnv)
	getenv := func(k string) string {
		if k == passwordEnv {
			if hasPassword {
				return password
			}
			return ""
		}
		return os.Getenv(k)
	}
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: getenv})
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
	tlsCert        string
	tlsKey         string
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
	fs.StringVar(&o.origin, "origin", "", "the `URL` browsers load the page from (default: http:// or https:// and the -listen address); needed when -listen has no host")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with the certificate chain in PEM `FILE` (with -tls-key; default with -allow-remote: an ephemeral self-signed certificate)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the private key of -tls-cert, PEM `FILE`")
	// Discovery: the flags of lanscan.
	fs.StringVar(&o.filter, "filter", "", "initial filter `EXPR` (name or domain substring or glob, IP, CIDR, range, domain:, os:, source:; space = AND, comma = OR)")
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
			return usageErr("-listen %s has no host: give -origin https://HOST:PORT as browsers reach the console", o.listen)
		}
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usageErr("-tls-cert and -tls-key go together")
	}
	useTLS := o.allowRemote || o.tlsCert != ""
	scheme := "http://"
	if useTLS {
		scheme = "https://"
	}
	if o.origin != "" && !strings.HasPrefix(o.origin, scheme) {
		return usageErr("-origin %s: the page is served as %s...", o.origin, scheme)
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
		if err := cliutil.BuildApplet(ctx, appletPath, o.appletOS, o.appletArch); err != nil {
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
		origin = scheme + ln.Addr().String()
	}
	origin = strings.TrimSuffix(origin, "/")
	var fingerprint string
	if useTLS {
		cert, err := pageCertificate(o, origin)
		if err != nil {
			fmt.Fprintf(e.stderr, "console: %v\n", err)
			return 1
		}
		if o.tlsCert == "" {
			fingerprint = selfcert.Fingerprint(cert.Certificate[0])
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	secret := newSecret()

	cfg := session.Config{
		Credentials:        creds,
		CheckinListen:      checkinAddr,
		ConsoleAddr:        checkinAddr,
		CheckinFromAnyAddr: o.anyAddr,
		Timeouts:           session.Timeouts{Checkin: o.checkin},
		Logger:             log,
		Discoverers:        ds, // run once for every page (Client.Hosts)
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
	srv, err := newServer(serverConfig{Client: client, Logger: log, Origin: origin, Secret: secret, Filter: filter, Sources: len(ds)})
	if err != nil {
		return usageErr("-origin: %v", err)
	}

	hs := &http.Server{Handler: srv.handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)} // TLS handshake noise

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if h, _, _ := net.SplitHostPort(client.CheckinAddr()); o.console == "" && isLoopback(h) {
		log.Warn("the check-in listens on loopback, which applets on other computers cannot reach: give -console HOST:PORT", "checkin", client.CheckinAddr())
	}
	if !isLoopback(lhost) {
		log.Warn("the console is reachable from other machines: anyone who reaches it can connect to computers with the credentials typed into it", "listen", o.listen)
	}
	url := launchURL(origin, secret)
	if fingerprint != "" {
		fmt.Fprintf(e.stdout, "console: self-signed certificate, SHA-256 fingerprint %s (check it in the browser before you accept it)\n", fingerprint)
	}
	fmt.Fprintf(e.stdout, "console: serving %s/ (check-in on %s); Ctrl-C stops\n", origin, client.CheckinAddr())
	fmt.Fprintf(e.stdout, "console: open %s\n  (this URL carries a secret made for this launch: do not share it)\n", url)
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

// pageCertificate returns the page's TLS certificate: -tls-cert/-tls-key,
// or an ephemeral self-signed one (ECDSA P-256, in memory only) for the
// -listen host, the -origin host and, when -listen has no host, this
// machine's name and addresses.
func pageCertificate(o options, origin string) (tls.Certificate, error) {
	if o.tlsCert != "" {
		c, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		return c, nil
	}
	var hosts []string
	lhost, _, _ := net.SplitHostPort(o.listen)
	if u, err := neturl.Parse(origin); err == nil {
		hosts = append(hosts, u.Hostname())
	}
	if a, err := netip.ParseAddr(lhost); lhost != "" && (err != nil || !a.IsUnspecified()) {
		hosts = append(hosts, lhost)
	} else {
		if name, err := os.Hostname(); err == nil {
			hosts = append(hosts, name)
		}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					hosts = append(hosts, ipn.IP.String())
				}
			}
		}
	}
	return selfcert.New("lanconnect console (ephemeral)", 30*24*time.Hour, hosts...)
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
