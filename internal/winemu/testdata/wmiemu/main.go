// Command wmiemu is a test helper: winemu with DCOM/WMI enabled, run by
// lab tests inside a target's network namespace. (cmd/winemu serves the
// endpoint mapper and the SCM only.) It lives under testdata so that
// `go build ./...` and `go vet ./...` skip it; build it explicitly with
// `go build ./internal/winemu/testdata/wmiemu`.
//
// Usage:
//
//	WINEMU_PASSWORD=secret wmiemu -listen 10.1.2.3 -root /srv/target/admin -user Administrator [-fault blackhole]
//
// The password comes only from WINEMU_PASSWORD. -fault takes a
// comma-separated list of blackhole, filter-dynamic, deny-activation and
// deny-login, or create-return=N (see winemu.WMIFaults); Server.Faults specifications (see winemu.Faults.Set)
// go in -server-fault. It prints "wmiemu listening epm=IP:135
// dynamic=IP:PORT" once it serves, and stops cleanly on SIGTERM or
// SIGINT, stopping the processes it started. It must only listen on lab
// or loopback addresses.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemlevel1login/v0"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx))
}

func run(ctx context.Context) int {
	var (
		listen      = flag.String("listen", "", "IP address to listen on (required)")
		root        = flag.String("root", "", `directory that C:\Windows maps to (required)`)
		user        = flag.String("user", "", "administrator account (password from WINEMU_PASSWORD)")
		name        = flag.String("name", "WINEMU", "NetBIOS name")
		workgroup   = flag.String("workgroup", "WORKGROUP", "workgroup")
		caption     = flag.String("os-caption", "", "Win32_OperatingSystem.Caption")
		version     = flag.String("os-version", "", "Win32_OperatingSystem.Version")
		build       = flag.String("os-build", "", "Win32_OperatingSystem.BuildNumber")
		arch        = flag.String("os-arch", "", `Win32_OperatingSystem.OSArchitecture (default "64-bit")`)
		faults      = flag.String("fault", "", "WMI fault modes: blackhole, filter-dynamic, deny-activation, deny-login, create-return=N")
		serverFault = flag.String("server-fault", "", "winemu.Faults specification")
	)
	flag.Parse()
	ip, err := netip.ParseAddr(*listen)
	if err != nil || *root == "" || *user == "" || os.Getenv("WINEMU_PASSWORD") == "" {
		fmt.Fprintln(os.Stderr, "wmiemu: -listen IP, -root, -user and WINEMU_PASSWORD are required")
		return 2
	}
	srv := &winemu.Server{
		Users:         map[string]winemu.User{*user: {Password: os.Getenv("WINEMU_PASSWORD"), Admin: true}},
		Root:          *root,
		NetBIOSName:   strings.ToUpper(*name),
		Workgroup:     *workgroup,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, nil)),
		ProcessOutput: os.Stderr,
	}
	if err := srv.Faults.Set(*serverFault); err != nil {
		fmt.Fprintln(os.Stderr, "wmiemu:", err)
		return 2
	}
	w, err := winemu.EnableWMI(srv, winemu.OSInfo{Caption: *caption, Version: *version, BuildNumber: *build, OSArchitecture: *arch})
	if err != nil {
		fmt.Fprintln(os.Stderr, "wmiemu:", err)
		return 1
	}
	for _, f := range strings.Split(*faults, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "":
		case "blackhole":
			w.Faults.SetBlackhole(true)
		case "filter-dynamic":
			w.Faults.SetFilterDynamic(true)
		case "deny-activation":
			w.Faults.SetDenyActivation(true)
		case "deny-login":
			w.Faults.SetDenyLogin(true)
		case "create-return":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				fmt.Fprintln(os.Stderr, "wmiemu: bad create-return")
				return 2
			}
			w.Faults.SetCreateReturn(uint32(n))
		default:
			fmt.Fprintf(os.Stderr, "wmiemu: unknown fault %q\n", k)
			return 2
		}
	}
	if err := srv.Start(ctx, ip.String()); err != nil {
		fmt.Fprintln(os.Stderr, "wmiemu:", err)
		return 1
	}
	ep, _ := srv.EndpointFor(iwbemlevel1login.Level1LoginSyntaxV0_0)
	fmt.Printf("wmiemu listening epm=%s dynamic=%s\n", netip.AddrPortFrom(ip, 135), ep.Addr)
	<-ctx.Done()
	srv.Close()
	w.Close()
	return 0
}
