package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
)

// newJournal returns the journal of session id: in memory, or, with
// Config.JournalDir set, persisted as <JournalDir>/<id>.json (created or
// reopened at once; it fails when the file cannot be written). It also
// returns the file's path, or "". It records nothing itself.
func (c *Client) newJournal(id string) (*deploy.Journal, string, error) {
	dir := c.cfg.JournalDir
	if dir == "" {
		return &deploy.Journal{}, "", nil
	}
	if id == "" || id != filepath.Base(id) || id == "." || id == ".." {
		return nil, "", fmt.Errorf("session ID %q cannot name a journal file", id)
	}
	p := filepath.Join(dir, id+".json")
	j, err := deploy.OpenJournal(p)
	if err != nil {
		return nil, "", err
	}
	return j, p, nil
}

// undoers returns the undo functions for g's computer: deploy's files and
// directories, then those of every configured launcher, preflighter and
// deployer that implements deploy.Undoer, then Config.Undoers (a later
// one replaces an earlier one's function for the same kind).
func (c *Client) undoers(g *adauth.Grant) deploy.Undoers {
	u := deploy.FileUndoers(g)
	add := func(v any) {
		if p, ok := v.(deploy.Undoer); ok {
			maps.Copy(u, p.Undoers(g))
		}
	}
	for _, l := range c.cfg.Launchers {
		add(l)
	}
	add(c.cfg.Preflight)
	add(c.cfg.Deployer)
	for _, p := range c.cfg.Undoers {
		add(p)
	}
	return u
}

// undoJournal undoes every artifact still in j, newest first, through g,
// and reports each. With Config.UndoScope set, a journal that names
// anything outside it is not undone at all: each of its artifacts is
// reported as left with the scope's error (matching deploy.ErrOutOfScope).
// A persisted journal's file (path) is removed once nothing is left in
// it, and kept otherwise, so that a later recovery can finish the work.
func (c *Client) undoJournal(ctx context.Context, j *deploy.Journal, path string, g *adauth.Grant) Cleanup {
	if s := c.cfg.UndoScope; s != nil {
		if err := s.Check(j.Artifacts()); err != nil {
			var cl Cleanup
			for _, a := range j.Artifacts() {
				cl.Left = append(cl.Left, Leftover{What: a.Label(), Err: err})
			}
			return cl
		}
	}
	cl := cleanupReport(j.Undo(ctx, c.undoers(g)))
	if path != "" && j.Len() == 0 {
		os.Remove(path)
	}
	return cl
}

// cleanupReport turns a deploy.UndoReport into a Cleanup: each artifact
// is its Label; one that no undo function took is left with an error
// saying so. It does not touch the target.
func cleanupReport(rep deploy.UndoReport) Cleanup {
	var c Cleanup
	for _, a := range rep.Undone {
		c.Undone = append(c.Undone, a.Label())
	}
	for _, f := range rep.Failed {
		c.Left = append(c.Left, Leftover{What: f.Artifact.Label(), Err: f.Err})
	}
	for _, a := range rep.Skipped {
		c.Left = append(c.Left, Leftover{What: a.Label(), Err: errNoUndo})
	}
	return c
}

// errNoUndo is why an artifact that no undo function took is left.
var errNoUndo = errors.New("no undo function for it")
