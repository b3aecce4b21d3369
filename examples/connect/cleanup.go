package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/cliutil"
	"github.com/lanconnect/lanconnect/standard"
)

// cleanupJournals undoes the journals that sessions persisted with
// -journal and never closed (a crash, a -keep): for each file, it checks
// that every artifact is one that connect makes (opts.Scope: its service
// prefix, its parameter key, its applet folders under ADMIN$), logs on to
// the journal's host, undoes every artifact newest first, and removes the
// file once nothing is left. A file that names anything else is refused
// whole, before any logon, and kept. It returns 0 when every file is
// clean.
func cleanupJournals(ctx context.Context, files []string, creds adauth.Credentials, opts standard.Options, log *slog.Logger, e env) int {
	scope, err := opts.Scope()
	if err != nil {
		fmt.Fprintf(e.stderr, "connect: %v\n", err)
		return exitFailed
	}
	code := exitOK
	// One guard for the run: a wrong password is tried on one host, not on
	// the host of every journal.
	var guard adauth.LockoutGuard
	auth := guard.Wrap(&adauth.SMBAuthenticator{Logger: log})
	for _, f := range files {
		j, err := deploy.OpenJournal(f)
		if err != nil {
			fmt.Fprintf(e.stderr, "connect: %s: %v\n", f, err)
			code = exitFailed
			continue
		}
		arts := j.Artifacts()
		if len(arts) == 0 {
			os.Remove(f)
			fmt.Fprintf(e.stdout, "%s: nothing to undo\n", f)
			continue
		}
		if err := scope.Check(arts); err != nil {
			fmt.Fprintf(e.stderr, "connect: %s: %v\n", f, err)
			code = exitFailed
			continue
		}
		host := arts[0].Addr
		g, err := auth.Authenticate(ctx, host, creds)
		if err != nil {
			fmt.Fprintf(e.stderr, "connect: %s: %s: %s\n", f, cliutil.Safe(host), cliutil.Safe(err.Error()))
			code = exitFailed
			continue
		}
		rep, err := j.UndoWithin(ctx, opts.Undoers(g), scope)
		g.Close()
		if err != nil { // checked above; the file cannot have changed since
			fmt.Fprintf(e.stderr, "connect: %s: %v\n", f, err)
			code = exitFailed
			continue
		}
		for _, a := range rep.Undone {
			fmt.Fprintf(e.stdout, "%s: %s: undone %s\n", f, cliutil.Safe(host), cliutil.Safe(a.Label()))
		}
		for _, l := range rep.Failed {
			fmt.Fprintf(e.stdout, "%s: %s: LEFT %s: %s\n", f, cliutil.Safe(host), cliutil.Safe(l.Artifact.Label()), cliutil.Safe(errText(l.Err)))
		}
		for _, a := range rep.Skipped {
			fmt.Fprintf(e.stdout, "%s: %s: LEFT %s: %s\n", f, cliutil.Safe(host), cliutil.Safe(a.Label()), "no undo function for it")
		}
		if j.Len() == 0 {
			os.Remove(f)
		} else {
			code = exitFailed
		}
	}
	return code
}
