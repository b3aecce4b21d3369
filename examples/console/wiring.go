package main

import (
	"context"
	"errors"
	"log/slog"
	"maps"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/remotereg"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/wmi"
)

// The session package sees interfaces only. This file picks the concrete
// pieces a console uses (deploy.Copy, a deploy.Journal per session, the
// remotereg SCM launcher, then WMI) and adapts them to those interfaces.

// undoerProvider is implemented by launchers that record artifacts of
// their own (services, registry values) and know how to remove them.
type undoerProvider interface {
	Undoers(g *adauth.Grant) deploy.Undoers
}

// sessionJournal is the session.Journal of one session: a deploy.Journal
// that deploy.Copy and the launchers record in, undone through their
// undo functions.
type sessionJournal struct {
	dj        deploy.Journal
	target    *session.Target
	launchers []deploy.Launcher
}

func (j *sessionJournal) Undo(ctx context.Context) session.Cleanup {
	undo := deploy.FileUndoers(j.target.Grant)
	for _, l := range j.launchers {
		if p, ok := l.(undoerProvider); ok {
			maps.Copy(undo, p.Undoers(j.target.Grant))
		}
	}
	rep := j.dj.Undo(ctx, undo)
	var c session.Cleanup
	for _, a := range rep.Undone {
		c.Undone = append(c.Undone, artifactName(a))
	}
	for _, f := range rep.Failed {
		c.Left = append(c.Left, session.Leftover{What: artifactName(f.Artifact), Err: f.Err})
	}
	for _, a := range rep.Skipped {
		c.Left = append(c.Left, session.Leftover{What: artifactName(a), Err: errors.New("nothing knows how to undo it")})
	}
	return c
}

func artifactName(a deploy.Artifact) string {
	switch {
	case a.Path != "":
		return a.Kind + " " + a.Share + `\` + a.Path
	case a.Name != "":
		return a.Kind + " " + a.Name
	}
	return a.Kind
}

// deployJournal returns the deploy.Journal behind a session's journal.
func deployJournal(t *session.Target) *deploy.Journal {
	if j, ok := t.Journal.(*sessionJournal); ok {
		return &j.dj
	}
	return nil
}

// copier is the session.Deployer: deploy.Copy under a file name unique to
// the session.
type copier struct {
	applet deploy.Applet
	log    *slog.Logger
}

func (c copier) Deploy(ctx context.Context, t *session.Target, progress func(done, total int64)) (string, error) {
	a := c.applet
	a.Name = "lcapplet-" + t.Session + ".exe"
	r, err := deploy.Copy(ctx, t.Grant, a, deploy.CopyOptions{Journal: deployJournal(t), Progress: progress, Logger: c.log})
	if err != nil {
		return "", err
	}
	return r.LocalPath, nil
}

// namedLauncher is a deploy.Launcher with the short name technicians see.
type namedLauncher struct {
	name string
	l    deploy.Launcher
}

func (n namedLauncher) Name() string { return n.name }

func (n namedLauncher) Launch(ctx context.Context, t *session.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	h, err := n.l.Launch(ctx, t.Grant, spec, deployJournal(t))
	if err != nil {
		return nil, err
	}
	return h, nil
}

// registryPreflight reads the target's settings through remotereg.
type registryPreflight struct{ l *remotereg.Launcher }

func (p registryPreflight) Preflight(ctx context.Context, t *session.Target) (*session.Preflight, error) {
	var j remotereg.Journal
	if dj := deployJournal(t); dj != nil {
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

// wire fills the connect half of cfg: the SMB authenticator, the
// preflight, the copier, the launchers (SCM through remotereg, then WMI)
// and a journal per session.
func wire(cfg *session.Config, applet deploy.Applet, servicePrefix string, log *slog.Logger) {
	scm := &remotereg.Launcher{ServicePrefix: servicePrefix, Logger: log}
	ws := &wmi.Launcher{Logger: log}
	dls := []deploy.Launcher{scm, ws}
	cfg.Authenticator = &adauth.SMBAuthenticator{Logger: log}
	cfg.Preflight = registryPreflight{scm}
	cfg.Deployer = copier{applet: applet, log: log}
	cfg.Launchers = []session.Launcher{namedLauncher{"scm", scm}, namedLauncher{"wmi", ws}}
	cfg.NewJournal = func(_ context.Context, t *session.Target) (session.Journal, error) {
		return &sessionJournal{target: t, launchers: dls}, nil
	}
	cfg.ServicePrefix = servicePrefix
}
