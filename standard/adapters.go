package standard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/remotereg"
	"github.com/lanconnect/lanconnect/session"
)

// Journals makes each session's journal (its New is a
// session.Config.NewJournal): a deploy.Journal that Deployer, Launcher and
// Preflighter record in, undone with the undo functions of files and of
// Launchers.
type Journals struct {
	// Dir, when set, is the directory where each journal is persisted as
	// <session ID>.json (see deploy.OpenJournal); the directory must
	// exist. Empty keeps journals in memory.
	Dir string
	// Launchers are asked for their undo functions (those with an
	// Undoers(*adauth.Grant) deploy.Undoers method) when a journal is
	// undone.
	Launchers []deploy.Launcher
	// Scope, when set, restricts undo to what lanconnect makes (see
	// Options.Scope, which Apply sets here): a journal with any entry
	// outside it is undone not at all, and its entries are reported as
	// left with an error matching deploy.ErrOutOfScope. Nil undoes
	// whatever the journal names.
	Scope deploy.Scope
}

// New returns the journal of t's session. With Dir set it creates (or
// reopens) Dir/<session ID>.json at once; it fails when the file cannot be
// written. It does not record anything itself.
func (js Journals) New(_ context.Context, t *session.Target) (session.Journal, error) {
	if js.Dir == "" {
		return &Journal{j: &deploy.Journal{}, t: t, launchers: js.Launchers, scope: js.Scope}, nil
	}
	if t.Session == "" || t.Session != filepath.Base(t.Session) || t.Session == "." || t.Session == ".." {
		return nil, fmt.Errorf("standard: session ID %q cannot name a journal file", t.Session)
	}
	p := filepath.Join(js.Dir, t.Session+".json")
	dj, err := deploy.OpenJournal(p)
	if err != nil {
		return nil, err
	}
	return &Journal{j: dj, t: t, launchers: js.Launchers, scope: js.Scope, path: p}, nil
}

// Journal is one session's session.Journal, made by Journals.New.
type Journal struct {
	j         *deploy.Journal
	t         *session.Target
	launchers []deploy.Launcher
	scope     deploy.Scope // nil: no restriction
	path      string       // the persisted file, or "" in memory
}

// Deploy returns the deploy.Journal that the session's steps record in.
func (j *Journal) Deploy() *deploy.Journal { return j.j }

// Path returns the file the journal is persisted to, or "" when it is in
// memory.
func (j *Journal) Path() string { return j.path }

// Undo implements session.Journal: it undoes every artifact still in the
// journal, newest first, through the session's grant, and reports each. A
// persisted journal's file is removed once nothing is left in it, and kept
// otherwise, so that a later cleanup can finish the work. With a Scope,
// a journal that names anything outside it is not undone at all: each of
// its artifacts is reported as left.
func (j *Journal) Undo(ctx context.Context) session.Cleanup {
	if j.scope != nil {
		if err := j.scope.Check(j.j.Artifacts()); err != nil {
			return refused(j.j.Artifacts(), err)
		}
	}
	c := CleanupReport(j.j.Undo(ctx, undoers(j.t.Grant, j.launchers)))
	if j.path != "" && j.j.Len() == 0 {
		os.Remove(j.path)
	}
	return c
}

// JournalOf returns the deploy.Journal behind t.Journal when Journals made
// it, or nil (the steps then journal nothing).
func JournalOf(t *session.Target) *deploy.Journal {
	if j, ok := t.Journal.(*Journal); ok {
		return j.j
	}
	return nil
}

// undoProvider is a launcher that can undo the artifacts it journals.
type undoProvider interface {
	Undoers(g *adauth.Grant) deploy.Undoers
}

// undoers returns the undo functions for g's target: files and
// directories, and every launcher's own artifacts.
func undoers(g *adauth.Grant, ls []deploy.Launcher) deploy.Undoers {
	u := deploy.FileUndoers(g)
	for _, l := range ls {
		if p, ok := l.(undoProvider); ok {
			maps.Copy(u, p.Undoers(g))
		}
	}
	return u
}

// CleanupReport turns a deploy.UndoReport into the session's Cleanup: each
// artifact becomes a short description ("file ADMIN$\lanconnect-s1-0a1b2c3d\x.exe",
// "remotereg.service lanconnect-1a2b3c4d"); one that no undo function took
// is left with an error saying so. It does not touch the target.
func CleanupReport(rep deploy.UndoReport) session.Cleanup {
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

// refused reports a journal that a scope refused: every artifact is left,
// with the scope's error.
func refused(arts []deploy.Artifact, err error) session.Cleanup {
	var c session.Cleanup
	for _, a := range arts {
		c.Left = append(c.Left, session.Leftover{What: describe(a), Err: err})
	}
	return c
}

func describe(a deploy.Artifact) string {
	switch {
	case a.Path != "":
		return a.Kind + " " + a.Share + `\` + a.Path
	case a.Name != "":
		return a.Kind + " " + a.Name
	}
	return a.Kind
}

// Deployer is the session.Deployer over deploy.Copy. It copies Applet into
// a new folder of the session's own under ADMIN$ (deploy.FolderName of the
// session ID: "lanconnect-<session ID>-<random>"), created create-only, so
// that sessions to one host never share a folder and a folder prepared in
// advance is refused; the file name carries the session ID too. It records
// what it creates in the session's journal (JournalOf). It does not launch
// anything.
type Deployer struct {
	// Applet is what is copied; its Name is the pattern of the file name
	// (see AppletFileName).
	Applet deploy.Applet
	// Copy tunes deploy.Copy; its Folder, Journal, Progress and Logger are
	// set per call. Its Dir, when set, is the parent of the session's
	// folder and must be admin-only (deploy.CheckFolder).
	Copy deploy.CopyOptions
	// Logger receives deploy.Copy's debug messages; nil discards them.
	Logger *slog.Logger
}

// Deploy implements session.Deployer: it copies the applet to t's target
// through t.Grant (deploy.Copy: temporary name, verification, rename),
// reports progress, records the files and directories it creates in the
// session's journal, and returns the applet's local path there. It does not
// undo anything itself: what a failed copy left is in the journal, which the
// session undoes.
func (d Deployer) Deploy(ctx context.Context, t *session.Target, progress func(done, total int64)) (string, error) {
	a := d.Applet
	a.Name = AppletFileName(a.Name, t.Session)
	o := d.Copy
	o.Folder = deploy.FolderName(t.Session)
	o.Journal, o.Progress, o.Logger = JournalOf(t), progress, d.Logger
	r, err := deploy.Copy(ctx, t.Grant, a, o)
	if err != nil {
		return "", err
	}
	return r.LocalPath, nil
}

// AppletFileName returns the per-session file name of an applet named name:
// the session ID goes before the extension ("lcapplet.exe", "s1" gives
// "lcapplet-s1.exe").
func AppletFileName(name, sessionID string) string {
	ext := path.Ext(name)
	if ext == name { // ".exe": no stem
		ext = ""
	}
	return strings.TrimSuffix(name, ext) + "-" + sessionID + ext
}

// Launcher is the session.Launcher over a deploy.Launcher (a
// *remotereg.Launcher or a *wmi.Launcher): it launches on the session's
// grant and records in the session's journal (JournalOf). Name is Method,
// the short name technicians see. It adds no fallback: package session
// decides that.
type Launcher struct {
	// Method is the name the session reports ("scm", "wmi").
	Method Method
	// Launcher does the work.
	Launcher deploy.Launcher
}

// Name implements session.Launcher: it returns Method.
func (l Launcher) Name() string { return string(l.Method) }

// Launch implements session.Launcher: it calls Launcher.Launch on t.Grant
// with the session's journal and returns its handle, or its error
// (a *deploy.LaunchError from remotereg and wmi) with a nil handle. It does
// not retry.
func (l Launcher) Launch(ctx context.Context, t *session.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	h, err := l.Launcher.Launch(ctx, t.Grant, spec, JournalOf(t))
	if err != nil {
		return nil, err // never a typed nil Handle
	}
	return h, nil
}

// Preflighter is the session.Preflighter over remotereg's preflight: it
// reads the target's OS and security settings through Remote Registry,
// starting that service through the SCM if needed and journaling the change
// (JournalOf). It changes nothing else.
type Preflighter struct {
	// Launcher reads the registry; nil means a zero remotereg.Launcher.
	Launcher *remotereg.Launcher
}

// Preflight implements session.Preflighter. When Remote Registry cannot be
// reached it returns the error with RemoteRegistryOff set, for the
// session's diagnosis.
func (p Preflighter) Preflight(ctx context.Context, t *session.Target) (*session.Preflight, error) {
	l := p.Launcher
	if l == nil {
		l = &remotereg.Launcher{}
	}
	var j remotereg.Journal
	if dj := JournalOf(t); dj != nil {
		j = remotereg.NewJournal(dj)
	}
	r, err := l.Preflight(ctx, remotereg.TargetFromGrant(t.Grant), j)
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
