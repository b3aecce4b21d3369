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
// -journal and never closed (a crash, a -keep): for each file, it logs on
// to the journal's host, undoes every artifact newest first, and removes
// the file once nothing is left. It returns 0 when every file is clean.
func cleanupJournals(ctx context.Context, files []string, creds adauth.Credentials, opts standard.Options, log *slog.Logger, e env) int {
	code := exitOK
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
		host := arts[0].Host
		auth := &adauth.SMBAuthenticator{Logger: log}
		g, err := auth.Authenticate(ctx, host, creds)
		if err != nil {
			fmt.Fprintf(e.stderr, "connect: %s: %s: %s\n", f, cliutil.Safe(host), cliutil.Safe(err.Error()))
			code = exitFailed
			continue
		}
		c := standard.CleanupReport(j.Undo(ctx, opts.Undoers(g)))
		g.Close()
		for _, u := range c.Undone {
			fmt.Fprintf(e.stdout, "%s: %s: undone %s\n", f, cliutil.Safe(host), cliutil.Safe(u))
		}
		for _, l := range c.Left {
			fmt.Fprintf(e.stdout, "%s: %s: LEFT %s: %s\n", f, cliutil.Safe(host), cliutil.Safe(l.What), cliutil.Safe(errText(l.Err)))
		}
		if j.Len() == 0 {
			os.Remove(f)
		} else {
			code = exitFailed
		}
	}
	return code
}
