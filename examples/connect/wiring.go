package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/remotereg"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/wmi"
)

// This file is the wiring rule in practice: session sees interfaces, and
// here the concrete pieces (deploy.Copy, deploy.Journal, remotereg, wmi)
// are adapted to them.

// undoer is a launcher that can undo the artifacts it journals.
type undoer interface {
	Undoers(g *adauth.Grant) deploy.Undoers
}

// journal is a session's deploy.Journal with the undo functions of the
// pieces that record in it (files from deploy.Copy, and each launcher's).
type journal struct {
	j         *deploy.Journal
	t         *session.Target
	launchers []deploy.Launcher
	path      string // the journal's file, or "" in memory
}

// newJournal makes each session's journal: in memory, or persisted to
// dir/<session>.json when dir is set, so that `connect -cleanup FILE` can
// undo what a session that never closed left behind.
func newJournal(ls []deploy.Launcher, dir string) func(context.Context, *session.Target) (session.Journal, error) {
	return func(_ context.Context, t *session.Target) (session.Journal, error) {
		if dir == "" {
			return &journal{j: &deploy.Journal{}, t: t, launchers: ls}, nil
		}
		path := filepath.Join(dir, t.Session+".json")
		dj, err := deploy.OpenJournal(path)
		if err != nil {
			return nil, err
		}
		return &journal{j: dj, t: t, launchers: ls, path: path}, nil
	}
}

// undoers returns the undo functions for g's target: files and
// directories, and every launcher's own artifacts.
func undoers(g *adauth.Grant, ls []deploy.Launcher) deploy.Undoers {
	u := deploy.FileUndoers(g)
	for _, l := range ls {
		if ud, ok := l.(undoer); ok {
			for k, f := range ud.Undoers(g) {
				u[k] = f
			}
		}
	}
	return u
}

// cleanupReport turns an undo report into the session's form.
func cleanupReport(rep deploy.UndoReport) session.Cleanup {
	var c session.Cleanup
	for _, a := range rep.Undone {
		c.Undone = append(c.Undone, describe(a))
	}
	for _, f := range rep.Failed {
		c.Left = append(c.Left, session.Leftover{What: describe(f.Artifact), Err: f.Err})
	}
	for _, a := range rep.Skipped {
		c.Left = append(c.Left, session.Leftover{What: describe(a), Err: errors.New("no undo function for it")})
	}
	return c
}

func journalOf(t *session.Target) *deploy.Journal {
	if j, ok := t.Journal.(*journal); ok {
		return j.j
	}
	return nil
}

// Undo implements session.Journal. A persisted journal's file is removed
// once nothing is left in it.
func (j *journal) Undo(ctx context.Context) session.Cleanup {
	c := cleanupReport(j.j.Undo(ctx, undoers(j.t.Grant, j.launchers)))
	if j.path != "" && j.j.Len() == 0 {
		os.Remove(j.path)
	}
	return c
}

func describe(a deploy.Artifact) string {
	switch {
	case a.Path != "":
		return fmt.Sprintf("%s %s\\%s", a.Kind, a.Share, a.Path)
	case a.Name != "":
		return a.Kind + " " + a.Name
	default:
		return a.Kind
	}
}

// deployer copies the applet under a per-session name, so that sessions
// to one host never share a file.
type deployer struct {
	applet deploy.Applet
	log    *slog.Logger
}

func (d *deployer) Deploy(ctx context.Context, t *session.Target, progress func(done, total int64)) (string, error) {
	a := d.applet
	a.Name = "lcapplet-" + t.Session + ".exe"
	r, err := deploy.Copy(ctx, t.Grant, a, deploy.CopyOptions{Journal: journalOf(t), Progress: progress, Logger: d.log})
	if err != nil {
		return "", err
	}
	return r.LocalPath, nil
}

// launcher is a deploy.Launcher under the short name technicians see.
type launcher struct {
	name string
	l    deploy.Launcher
}

func (l launcher) Name() string { return l.name }

func (l launcher) Launch(ctx context.Context, t *session.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	h, err := l.l.Launch(ctx, t.Grant, spec, journalOf(t))
	if err != nil {
		return nil, err
	}
	return h, nil
}

// preflight reads the registry through remotereg.
type preflight struct{ l *remotereg.Launcher }

func (p preflight) Preflight(ctx context.Context, t *session.Target) (*session.Preflight, error) {
	var j remotereg.Journal
	if dj := journalOf(t); dj != nil {
		j = remotereg.NewJournal(dj)
	}
	r, err := p.l.Preflight(ctx, remotereg.TargetFromGrant(t.Grant), j)
	if err != nil {
		off := errors.Is(err, deploy.ErrUnreachable) || errors.Is(err, deploy.ErrLaunchUnsupported)
		return &session.Preflight{RemoteRegistryOff: off}, err
	}
	return &session.Preflight{
		Product: r.Product, Version: r.Version, Build: r.Build, Arch: r.Arch,
		ForceGuest: r.ForceGuest, LmCompatibilityLevel: r.LmCompatibilityLevel,
		LocalAccountTokenFilterPolicy: r.LocalAccountTokenFilterPolicy,
	}, nil
}

// newWMI makes the WMI launcher; a build without one sets it to nil, and
// "-method wmi" then says that it is not available.
var newWMI = func(log *slog.Logger) deploy.Launcher { return &wmi.Launcher{Logger: log} }
