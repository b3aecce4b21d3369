// Command winemu runs the Windows RPC emulator (endpoint mapper and
// Service Control Manager over DCE/RPC on TCP with NTLM) next to a Samba
// target, so that SCM service creation and start can be tested against
// it.
//
// Usage:
//
//	WINEMU_PASSWORD=secret winemu -listen 10.1.2.3 -root /srv/target/admin -user Administrator
//
// It listens on IP:135 (the endpoint mapper, -epm-port) and on a dynamic
// port (-dynamic-port, 0 picks one) that serves svcctl and that the
// endpoint mapper hands out. The password comes only from the
// WINEMU_PASSWORD environment variable (an NT hash in hex may be given in
// WINEMU_NTHASH instead); it is never accepted as a flag and never
// logged. -root is the directory C:\Windows maps to (the target's ADMIN$
// path). The user is an administrator unless -admin=false.
//
// Fault modes (see winemu.Faults) can be set at start with -fault SPEC
// and changed at run time through a Unix socket given with -control
// PATH, one command per line: a specification such as "deny", "hang=off",
// "refuse", "did-not-start", "tamper=OPNUM:OFFSET:BIT:COUNT[:sealed]" or
// "none", or "status", "tampered" and "services"; each gets one reply line
// starting with "ok" or "error". For example:
//
//	echo hang | socat - UNIX-CONNECT:/tmp/winemu.ctl
//
// StartService waits -service-timeout (30 s, Windows' default) for the
// service process to report running on the descriptor named by
// WINEMU_SERVICE_STATUS_FD (see winemu.ServiceStatusFDEnv; the example
// applet does), and kills it and fails with 1053 otherwise; a negative
// value turns the wait off.
//
// With -wmi it also serves DCOM and WMI (see winemu.EnableWMI):
// Win32_Process.Create starts processes under -root like the SCM does.
//
// It logs one line per RPC call to standard error (slog text format) and
// prints one line "winemu listening epm=IP:PORT dynamic=IP:PORT" to
// standard output once both ports accept connections. SIGTERM or SIGINT
// stop it cleanly: listeners and connections close, and the processes
// that services started are stopped (SIGTERM to their process group,
// SIGKILL after two seconds). They outlive winemu instead when
// -keep-processes is given or WINEMU_KEEP_PROCESSES=1 is set (all of
// them), or when their service's name matches a pattern given with
// -keep-services (for example -keep-services 'LCKeep*': create the
// service with such a name to mark it).
//
// It must only listen on lab or loopback addresses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/gokrb5.fork/v9/keytab"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("winemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen      = fs.String("listen", "", "IP address to listen on (required)")
		root        = fs.String("root", "", `directory that C:\Windows maps to (the target's ADMIN$ path; required)`)
		user        = fs.String("user", "", "account name clients authenticate as (required; password from WINEMU_PASSWORD)")
		admin       = fs.Bool("admin", true, "the account is an administrator")
		epmPort     = fs.Int("epm-port", 135, "endpoint mapper port")
		dynPort     = fs.Int("dynamic-port", 0, "port for svcctl and other interfaces (0 picks a free one)")
		name        = fs.String("name", "", "NetBIOS computer name announced in NTLM (default: host name)")
		workgroup   = fs.String("workgroup", "WORKGROUP", "NetBIOS domain or workgroup announced in NTLM")
		keep        = fs.Bool("keep-processes", false, "leave started processes running when winemu stops (also WINEMU_KEEP_PROCESSES=1)")
		keepSvcs    = fs.String("keep-services", "", "comma-separated service-name patterns (e.g. LCKeep*) whose processes outlive winemu")
		debug       = fs.Bool("debug", false, "log PDU-level detail")
		faults      = fs.String("fault", "", "fault modes to start with, e.g. deny or tamper=6:4:1:1 (see winemu.Faults.Set)")
		controlPath = fs.String("control", "", "Unix socket that accepts fault commands at run time")
		startWait   = fs.Duration("service-timeout", winemu.DefaultServiceStartTimeout, "how long StartService waits for a service to report running before it fails with 1053 (negative: no wait)")
		keytabPath  = fs.String("keytab", "", "accept Kerberos (auth type 16) with the computer's keys from this keytab `FILE` (host/, RPCSS/)")
		keytabPrinc = fs.String("keytab-principal", "", "the keytab entry to decrypt tickets with (default: the ticket's service name)")
		noNTLM      = fs.Bool("no-ntlm", false, "refuse NTLM and SPNEGO binds (Kerberos only; needs -keytab)")
		withWMI     = fs.Bool("wmi", false, "also serve DCOM/WMI (object exporter and activation on the endpoint mapper's port, WMI on the dynamic port)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "winemu: %s\n", msg)
		fs.Usage()
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected arguments: " + strings.Join(fs.Args(), " "))
	}
	ip, err := netip.ParseAddr(*listen)
	if err != nil {
		return usage("-listen must be an IP address")
	}
	if *epmPort <= 0 || *epmPort > 65535 || *dynPort < 0 || *dynPort > 65535 {
		return usage("ports must be in 1-65535 (-dynamic-port may be 0)")
	}
	if *root == "" || *user == "" {
		return usage("-root and -user are required")
	}
	if fi, err := os.Stat(*root); err != nil || !fi.IsDir() {
		return usage("-root must be an existing directory")
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return usage("-root: " + err.Error())
	}
	u := winemu.User{Password: getenv("WINEMU_PASSWORD"), NTHash: getenv("WINEMU_NTHASH"), Admin: *admin}
	var kt *keytab.Keytab
	if *keytabPath != "" {
		if kt, err = keytab.Load(*keytabPath); err != nil {
			return usage("-keytab: " + err.Error())
		}
	}
	if *noNTLM && kt == nil {
		return usage("-no-ntlm needs -keytab")
	}
	if u.Password == "" && u.NTHash == "" && !*noNTLM {
		return usage("set the password in WINEMU_PASSWORD (or an NT hash in WINEMU_NTHASH)")
	}
	nb := *name
	if nb == "" {
		h, _ := os.Hostname()
		nb, _, _ = strings.Cut(h, ".")
	}
	if len(nb) > 15 {
		nb = nb[:15]
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv := &winemu.Server{
		Users:           map[string]winemu.User{*user: u},
		Root:            absRoot,
		NetBIOSName:     strings.ToUpper(nb),
		Workgroup:       *workgroup,
		Logger:          logger,
		EPMPort:         *epmPort,
		DynamicPort:     *dynPort,
		KeepProcesses:   *keep || getenv("WINEMU_KEEP_PROCESSES") == "1",
		KeepServices:    splitList(*keepSvcs),
		ProcessOutput:   stderr,
		Keytab:          kt,
		KeytabPrincipal: *keytabPrinc,
		NoNTLM:          *noNTLM,

		ServiceStartTimeout: *startWait,
	}
	if *startWait == 0 {
		return usage("-service-timeout must not be 0 (negative turns the wait off)")
	}
	if err := srv.Faults.Set(*faults); err != nil {
		return usage(err.Error())
	}
	if *controlPath != "" {
		stopControl, err := serveControl(ctx, *controlPath, srv, logger)
		if err != nil {
			fmt.Fprintf(stderr, "winemu: %v\n", err)
			return 1
		}
		defer stopControl()
	}
	var wmiProvider *winemu.WMI
	if *withWMI {
		if wmiProvider, err = winemu.EnableWMI(srv, winemu.OSInfo{}); err != nil {
			fmt.Fprintf(stderr, "winemu: %v\n", err)
			return 1
		}
		defer wmiProvider.Close()
	}
	if err := srv.Start(ctx, ip.String()); err != nil {
		fmt.Fprintf(stderr, "winemu: %v\n", err)
		return 1
	}
	epm, _ := srv.EndpointFor(svcctl.SvcctlSyntaxV2_0)
	fmt.Fprintf(stdout, "winemu listening epm=%s dynamic=%s\n",
		netip.AddrPortFrom(ip, uint16(srv.EPMPort)), epm.Addr)
	<-ctx.Done()
	logger.Info("stopping")
	if err := srv.Close(); err != nil && !errors.Is(err, winemu.ErrServerClosed) {
		fmt.Fprintf(stderr, "winemu: %v\n", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}
