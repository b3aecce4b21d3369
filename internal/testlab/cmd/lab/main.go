// Command lab starts, lists and stops lanconnect test labs: Samba targets
// and a Samba AD DC in network namespaces on a private bridge (see package
// internal/testlab). It needs root.
//
//	lab up [-targets N] [-variants LIST] [-dc] [-computers N] [-client]
//	lab down [-all] [ID...]
//	lab status
//	lab demo [-hold]
//
// up and demo stay in the foreground; Ctrl-C (or SIGTERM) tears the lab
// down. down removes labs started by this command (asking their owner to
// tear down first) and stale labs whose owner is gone; -all also removes
// labs of running tests. With IDs, down considers only those labs.
// Passwords are never printed; up writes them to a root-only file in the
// lab directory for manual use.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up":
		err = cmdUp(ctx, os.Args[2:])
	case "down":
		err = cmdDown(ctx, os.Args[2:])
	case "status":
		err = cmdStatus(os.Args[2:])
	case "demo":
		err = cmdDemo(ctx, os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		return
	default:
		usage(os.Stderr)
		os.Exit(2)
	}
	if errors.Is(err, errInterrupted) {
		fmt.Fprintln(os.Stderr, "lab: interrupted during start-up; everything it had created is removed")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

// errInterrupted means a signal arrived while the lab was starting.
var errInterrupted = errors.New("interrupted")

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: lab up [-targets N] [-variants LIST] [-dc] [-computers N] [-client] [-v]
       lab down [-all] [ID...]
       lab status
       lab demo [-hold] [-v]
`)
}

func logger(verbose bool) *slog.Logger {
	lvl := slog.LevelWarn
	if verbose {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// startLab starts a lab, or returns ctx's error if interrupted (Start has
// then already removed what it created).
// owner is Options.Owner of the labs this command starts; `lab down`
// stops labs with this owner.
const owner = "lab"

func startLab(ctx context.Context, opts testlab.Options) (*testlab.Lab, error) {
	opts.Owner = owner
	fmt.Fprintln(os.Stderr, "lab: starting (Ctrl-C tears down)...")
	l, err := testlab.Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		return nil, err
	}
	return l, nil
}

func closeLab(l *testlab.Lab) error {
	fmt.Fprintln(os.Stderr, "lab: tearing down...")
	err := l.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab %s: teardown: %v\n", l.ID, err)
		return err
	}
	fmt.Fprintf(os.Stderr, "lab %s removed: %s\n", l.ID, l.Timings())
	return nil
}

func cmdUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	n := fs.Int("targets", 3, "number of targets")
	variants := fs.String("variants", "", "comma-separated variants of the first targets: guest-only, signing-mandatory, encrypt-required, ntlm-disabled, nosmb, nonmbd, standard, member (joined to the DC's domain; needs -dc), member-nontlm (a member that refuses NTLM)")
	dc := fs.Bool("dc", false, "start a Samba AD DC")
	noNTLM := fs.Bool("no-ntlm", false, "the DC refuses NTLM (ntlm auth = disabled); with -dc")
	skew := fs.Duration("skew", 0, "run the DC with its clock this far ahead (libfaketime); with -dc")
	computers := fs.Int("computers", 100, "computer objects to load into the DC")
	client := fs.Bool("client", false, "create a client namespace")
	verbose := fs.Bool("v", false, "log progress")
	_ = fs.Parse(args)
	opts := testlab.Options{Client: *client, Logger: logger(*verbose)}
	specs, err := targetSpecs(*n, *variants)
	if err != nil {
		return err
	}
	opts.Targets = specs
	if *dc {
		opts.DC = &testlab.DCSpec{Computers: *computers, NoNTLM: *noNTLM, ClockSkew: *skew}
	}
	l, err := startLab(ctx, opts)
	if err != nil {
		return err
	}
	defer closeLab(l)
	secrets, err := writeSecrets(l)
	if err != nil {
		return err
	}
	fmt.Print(l.String())
	fmt.Printf("up in %s\nstate: %s\naccounts and passwords (root only): %s\n", l.Timings(), l.StatePath(), secrets)
	fmt.Println("lab: up; Ctrl-C or `lab down` tears it down")
	// Stay until interrupted, or until `lab down` removed our state file.
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
			if _, err := os.Stat(l.StatePath()); errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
	}
}

func targetSpecs(n int, variants string) ([]testlab.TargetSpec, error) {
	var specs []testlab.TargetSpec
	if variants != "" {
		for _, v := range strings.Split(variants, ",") {
			v = strings.TrimSpace(v)
			switch v {
			case "nosmb":
				specs = append(specs, testlab.TargetSpec{NoSMB: true})
			case "nonmbd":
				specs = append(specs, testlab.TargetSpec{NoNmbd: true})
			case "standard":
				specs = append(specs, testlab.TargetSpec{})
			case "member":
				specs = append(specs, testlab.TargetSpec{DomainMember: true})
			case "member-nontlm":
				specs = append(specs, testlab.TargetSpec{DomainMember: true, Variant: testlab.NTLMDisabled})
			default:
				if !testlab.Variant(v).Valid() {
					return nil, fmt.Errorf("unknown variant %q", v)
				}
				specs = append(specs, testlab.TargetSpec{Variant: testlab.Variant(v)})
			}
		}
	}
	for len(specs) < n {
		specs = append(specs, testlab.TargetSpec{})
	}
	return specs, nil
}

// writeSecrets writes the lab's accounts with passwords to a root-only JSON
// file in the lab directory, for manual use (smbclient -A, ldapsearch -y).
func writeSecrets(l *testlab.Lab) (string, error) {
	type acct struct{ User, Password string }
	type tgt struct {
		Name, Addr, Workgroup, Variant string
		FQDN                           string `json:",omitempty"` // domain members
		Admin, User                    acct
	}
	out := struct {
		Targets []tgt
		DC      *struct {
			Addr, Hostname, Realm, Domain, CAFile string
			Admin                                 acct
		} `json:",omitempty"`
	}{}
	for _, t := range l.Targets {
		out.Targets = append(out.Targets, tgt{t.NetBIOSName, t.Addr.String(), t.Workgroup, t.Variant.String(), t.FQDN,
			acct{t.Admin.User, t.Admin.Password}, acct{t.User.User, t.User.Password}})
	}
	if d := l.DC; d != nil {
		out.DC = &struct {
			Addr, Hostname, Realm, Domain, CAFile string
			Admin                                 acct
		}{d.Addr.String(), d.Hostname, d.Realm, d.Domain, d.CAFile, acct{d.Admin.User, d.Admin.Password}}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(l.Dir, "accounts.json")
	return p, os.WriteFile(p, b, 0o600)
}

func cmdDown(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	all := fs.Bool("all", false, "also remove labs whose owner is a running test or program other than lab")
	_ = fs.Parse(args)
	labs, err := testlab.Labs()
	if err != nil {
		return err
	}
	if ids := fs.Args(); len(ids) > 0 {
		// Only the labs named.
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		var sel []*testlab.State
		for _, s := range labs {
			if want[s.ID] {
				sel = append(sel, s)
				delete(want, s.ID)
			}
		}
		for id := range want {
			fmt.Printf("lab %s: not found\n", id)
		}
		labs = sel
	}
	if len(labs) == 0 {
		fmt.Println("no labs")
		return nil
	}
	var errs []error
	for _, s := range labs {
		t0 := time.Now()
		if s.OwnerAlive() {
			if s.OwnerCmd != owner && !*all {
				fmt.Printf("lab %s: owned by running %s (pid %d), left alone (-all removes it)\n", s.ID, s.OwnerCmd, s.OwnerPID)
				continue
			}
			// Ask the owner to tear down its own lab first.
			if s.OwnerCmd == owner {
				_ = syscall.Kill(s.OwnerPID, syscall.SIGTERM)
				if waitRemoved(s.ID, 15*time.Second) {
					fmt.Printf("lab %s stopped by its owner (pid %d) in %v\n", s.ID, s.OwnerPID, time.Since(t0).Round(time.Millisecond))
					continue
				}
			}
		}
		if err := testlab.Cleanup(ctx, s); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: %w", s.ID, err))
			continue
		}
		fmt.Printf("lab %s removed in %v\n", s.ID, time.Since(t0).Round(time.Millisecond))
	}
	return errors.Join(errs...)
}

// waitRemoved waits until the lab's state file is gone (its owner closed
// it) or d has passed.
func waitRemoved(id string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(testlab.StatePath(id)); errors.Is(err, os.ErrNotExist) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func cmdStatus(args []string) error {
	labs, err := testlab.Labs()
	if err != nil {
		return err
	}
	if len(labs) == 0 {
		fmt.Println("no labs")
		return nil
	}
	for _, s := range labs {
		owner := "running"
		if !s.OwnerAlive() {
			owner = "stale (owner gone; cleaned at the next start or by `lab down`)"
		}
		fmt.Printf("lab %s: owner %s pid %d %s, since %s, %s\n", s.ID, s.OwnerCmd, s.OwnerPID, owner, s.Created.Local().Format(time.TimeOnly), s.Prefix)
		if s.Summary != "" {
			fmt.Print(indent(s.Summary))
		}
	}
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}
