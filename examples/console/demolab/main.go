// Command demolab runs the console against a lab, for `make demo-console`:
// it starts a lab of Windows-like targets, serves the SCM that Samba lacks
// (winemu) on each, starts the console in the root namespace with the
// lab's /24 as its TARGET, and tears everything down on Ctrl-C. It needs
// root.
//
//	demolab -console BIN -winemu BIN -applet BIN [-targets N] [-listen ADDR]
//
// The console tries the first target's ordinary account first, so that
// Connect opens the credential dialog; the admin accounts and passwords
// are in a root-only file whose path it prints (never the passwords).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demolab:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	console := flag.String("console", "", "console `binary`")
	winemu := flag.String("winemu", "", "winemu `binary`")
	applet := flag.String("applet", "", "applet `binary` for this machine (winemu runs it as a process)")
	n := flag.Int("targets", 3, "number of targets")
	listen := flag.String("listen", "127.0.0.1:8080", "the console's -listen")
	flag.Parse()
	if *console == "" || *winemu == "" || *applet == "" || *n < 1 {
		flag.Usage()
		return errors.New("-console, -winemu and -applet are required, -targets at least 1")
	}

	fmt.Fprintln(os.Stderr, "demolab: starting the lab (Ctrl-C tears down)...")
	lab, err := testlab.Start(ctx, testlab.Options{
		Targets: make([]testlab.TargetSpec, *n),
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "demolab: tearing the lab down...")
		if err := lab.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "demolab: teardown:", err)
			return
		}
		fmt.Fprintf(os.Stderr, "demolab: lab %s removed\n", lab.ID)
	}()

	for _, t := range lab.Targets {
		if err := serveSCM(ctx, lab, t, *winemu); err != nil {
			return fmt.Errorf("%s: %w", t.NetBIOSName, err)
		}
	}
	secrets, err := writeAccounts(lab)
	if err != nil {
		return err
	}
	first := lab.Targets[0]
	fmt.Printf("lab %s: %d targets on %s\n", lab.ID, len(lab.Targets), lab.Prefix)
	for _, t := range lab.Targets {
		fmt.Printf("  %-16s %-15s admin account %s\n", t.NetBIOSName, t.Addr, t.Admin.User)
	}
	fmt.Printf("the console tries %s (not an administrator) first; passwords for the dialog (root only): %s\n", first.User.User, secrets)

	cmd := exec.CommandContext(ctx, *console,
		"-listen", *listen, "-console", net.JoinHostPort(lab.HostAddr.String(), "0"),
		"-applet", *applet, "-user", first.User.User, lab.Prefix.String())
	cmd.Env = append(os.Environ(), "LANCONNECT_PASSWORD="+first.User.Password)
	cmd.Stderr = os.Stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	relayed := make(chan struct{})
	go func() { relayConsole(ctx, pr); close(relayed) }()
	// On Ctrl-C the console gets SIGINT too (same process group); give it
	// time to close its sessions before the lab goes.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 3 * time.Minute
	err = cmd.Run()
	pw.Close()
	<-relayed
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// relayConsole copies the console's output, and when it prints its launch
// URL (which carries the launch secret), checks that the console answers
// there and says so.
func relayConsole(ctx context.Context, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		fmt.Println(line)
		u, ok := strings.CutPrefix(line, "console: open ")
		if !ok {
			continue
		}
		go func() {
			if err := checkConsole(ctx, u); err != nil {
				fmt.Fprintln(os.Stderr, "demolab: the console does not answer at its URL:", err)
				return
			}
			fmt.Fprintf(os.Stderr, "demolab: the console answers; open %s in a browser on this machine\n", u)
		}()
	}
}

// checkConsole signs in at the launch URL as a browser does: the secret
// gives a cookie and a redirect to the page.
func checkConsole(ctx context.Context, u string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// serveSCM makes files copied to ADMIN$ executable, as an .exe is on
// Windows, and runs winemu in the target's namespace.
func serveSCM(ctx context.Context, lab *testlab.Lab, t *testlab.Target, winemu string) error {
	conf, err := os.ReadFile(t.SMBConf)
	if err != nil {
		return err
	}
	exe := strings.Replace(string(conf), "[ADMIN$]\n", "[ADMIN$]\n\tforce create mode = 0755\n", 1)
	if err := os.WriteFile(t.SMBConf, []byte(exe), 0o644); err != nil {
		return err
	}
	// winemu reads its password from the environment it inherits; this
	// runs before the console starts, one target at a time.
	os.Setenv("WINEMU_PASSWORD", t.Admin.Password)
	p, err := t.Start(ctx, winemu, "-listen", t.Addr.String(), "-root", t.AdminDir,
		"-control", filepath.Join(lab.Dir, t.NetBIOSName+".winemu.ctl"),
		"-user", t.Admin.User, "-name", t.NetBIOSName, "-workgroup", t.Workgroup)
	os.Unsetenv("WINEMU_PASSWORD")
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(t.Addr.String(), "135")
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || p.Exited() {
			return fmt.Errorf("winemu is not listening on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeAccounts writes the targets' accounts with their passwords to a
// root-only file in the lab directory and returns its path.
func writeAccounts(lab *testlab.Lab) (string, error) {
	type account struct{ Target, Addr, Admin, AdminPassword, User, UserPassword string }
	var as []account
	for _, t := range lab.Targets {
		as = append(as, account{t.NetBIOSName, t.Addr.String(), t.Admin.User, t.Admin.Password, t.User.User, t.User.Password})
	}
	b, err := json.MarshalIndent(as, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(lab.Dir, "console-demo-accounts.json")
	return p, os.WriteFile(p, append(b, '\n'), 0o600)
}
