// Command direct starts a vendor's applet on one computer without package
// session, written against lanconnect's public packages alone: it proves
// the account is administrator (adauth), copies the applet into a folder
// of its own under ADMIN$ with a journal (deploy), reads the computer's
// settings and starts the applet as a service through the Service Control
// Manager (remotereg), lets it run for a while, then stops it and undoes
// everything the journal holds.
//
//	direct -user 'CORP\helpdesk' -applet dist/acme.exe -journal /var/lib/acme/pc1.json -run 1m 10.0.0.21 -console 10.0.0.5:8443
//
// The arguments after the computer's address are the applet's own. The
// password comes from LC_PASSWORD. A journal left by a run that crashed is
// undone first, so a second run cleans up after the first.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/remotereg"
)

func main() {
	user := flag.String("user", "", `account, DOMAIN\user`)
	appletPath := flag.String("applet", "", "the applet to copy and start")
	journal := flag.String("journal", "direct-journal.json", "where the journal of what is created is kept")
	runFor := flag.Duration("run", time.Minute, "how long the applet runs before it is stopped")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: direct [flags] ADDRESS [applet arguments...]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	creds, err := adauth.Parse(*user, os.Getenv("LC_PASSWORD"))
	if err == nil {
		var applet deploy.Applet
		applet, err = deploy.AppletFromFile("acme.exe", "1.0", *appletPath)
		if err == nil {
			err = run(ctx, os.Stdout, flag.Arg(0), creds, applet, *journal, flag.Args()[1:], *runFor)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "direct:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, addr string, creds adauth.Credentials, applet deploy.Applet, journalPath string, args []string, runFor time.Duration) error {
	g, err := (&adauth.SMBAuthenticator{}).Authenticate(ctx, addr, creds)
	if err != nil {
		return err // an *adauth.AuthError: its Diagnose() says what to fix
	}
	defer g.Close()
	fmt.Fprintf(out, "%s: %s is administrator (SMB %s, signed %v, encrypted %v)\n", addr, g.Credentials.Account(), g.Facts.Dialect, g.Facts.Signed, g.Facts.Encrypted)

	scm := &remotereg.Launcher{ServicePrefix: "acme-"}
	undo := deploy.FileUndoers(g)
	maps.Copy(undo, scm.Undoers(g))
	j, err := deploy.OpenJournal(journalPath)
	if err != nil {
		return err
	}
	if j.Len() > 0 { // a crashed run left something: undo it first
		if rep := j.Undo(ctx, undo); !rep.OK() {
			return fmt.Errorf("an earlier run's leftovers: %w", rep.Err())
		}
	}
	// Everything below is undone at the end, whatever happens.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		rep := j.Undo(cctx, undo)
		for _, a := range rep.Undone {
			fmt.Fprintf(out, "undone: %s\n", a.Label())
		}
		if err := rep.Err(); err != nil {
			fmt.Fprintf(out, "left on %s (the journal %s keeps it): %v\n", addr, journalPath, err)
		}
	}()

	const id = "direct1"
	cp, err := deploy.Copy(ctx, g, applet, deploy.CopyOptions{Journal: j, Folder: deploy.FolderName(id)})
	if err != nil {
		return err
	}
	t := &deploy.Target{Session: id, Addr: addr, Grant: g, Journal: j, AppletPath: cp.LocalPath}
	if p, err := scm.Preflight(ctx, t); err == nil {
		fmt.Fprintf(out, "%s: %s %s (%s)\n", addr, p.Product, p.Version, p.Arch)
	} else {
		fmt.Fprintf(out, "%s: settings not read: %v\n", addr, err) // a note; the launch may still work
	}
	h, err := scm.Launch(ctx, t, deploy.LaunchSpec{Path: cp.LocalPath, Args: args})
	if err != nil {
		return err // a *deploy.LaunchError; errors.Is(err, deploy.ErrLaunchUnsupported) means: try WMI
	}
	fmt.Fprintf(out, "%s: applet running as process %d\n", addr, h.PID())
	select {
	case <-time.After(runFor):
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return h.Stop(sctx)
}
