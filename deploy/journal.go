package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/grantsess"
)

// Artifact kinds that package deploy records itself. Launchers record
// their own kinds, namespaced by a prefix and a dot (for example
// "remotereg.service").
const (
	KindFile = "file" // a file deploy created under Share
	KindDir  = "dir"  // a directory deploy created under Share
)

// ErrJournal matches failures to read or persist a journal file.
var ErrJournal = errors.New("deploy: journal")

// Artifact is one thing created or changed on a target, recorded so that it
// can be undone, possibly by another process after a crash. It is plain
// data and encodes to JSON.
type Artifact struct {
	// ID is assigned by Record, unique within the journal.
	ID uint64 `json:"id"`
	// Kind is KindFile, KindDir, or a launcher's namespaced kind.
	Kind string `json:"kind"`
	// Addr is the target's address or name, as in adauth.Grant.Addr. Its
	// JSON name is "host", as in journals written before it was renamed.
	Addr string `json:"host"`
	// Share and Path locate a file or directory: Path is relative to the
	// share, with backslashes (for example ADMIN$ and Temp\acme\a.exe).
	Share string `json:"share,omitempty"`
	Path  string `json:"path,omitempty"`
	// Name is what a launcher's artifact names (a service, a key).
	Name string `json:"name,omitempty"`
	// Data is the recorder's own payload, for its undo function.
	Data json.RawMessage `json:"data,omitempty"`
	// Note says why it exists, for people ("temporary copy").
	Note string `json:"note,omitempty"`
	// Created is when it was recorded.
	Created time.Time `json:"created"`
}

// String describes the artifact for logs and reports.
func (a Artifact) String() string {
	switch {
	case a.Path != "":
		return fmt.Sprintf("%s %s on %s: %s\\%s", a.Kind, a.Note, a.Addr, a.Share, a.Path)
	default:
		return fmt.Sprintf("%s on %s: %s", a.Kind, a.Addr, a.Name)
	}
}

// Label is the short description of the artifact that session cleanups
// and recovery tools report: its kind and its share and path
// ("file ADMIN$\lanconnect-s1.0a1b2c3d\applet-s1.exe"), else its kind and
// name ("remotereg.service lanconnect-1a2b3c4d"), else its kind.
func (a Artifact) Label() string {
	switch {
	case a.Path != "":
		return a.Kind + " " + a.Share + `\` + a.Path
	case a.Name != "":
		return a.Kind + " " + a.Name
	}
	return a.Kind
}

// Journal records the artifacts created on targets, in order, so that they
// can be undone in reverse order. A Journal opened with OpenJournal is
// persisted to its file (JSON, written to a temporary file and renamed)
// after every change, so a console that crashes can load it and clean up
// later. The zero value is an in-memory journal. It is safe for concurrent
// use.
//
// It records; it does not undo by itself: Undo calls the undo functions the
// caller supplies for each kind.
type Journal struct {
	mu     sync.Mutex
	path   string
	nextID uint64
	arts   []Artifact
	// recorded, when set (by this package's tests), is called after each
	// Record has persisted its artifact, outside the lock.
	recorded func(Artifact)
}

type journalFile struct {
	Version   int        `json:"version"`
	NextID    uint64     `json:"next_id"`
	Artifacts []Artifact `json:"artifacts"`
}

// OpenJournal loads the journal persisted at path, or starts an empty one
// there when the file does not exist. Every later change is written back.
// Errors match ErrJournal.
func OpenJournal(path string) (*Journal, error) {
	j := &Journal{path: path}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return j, j.persist()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	defer f.Close()
	if err := j.Load(f); err != nil {
		return nil, err
	}
	return j, nil
}

// Load replaces the journal's content with a journal read from r (as
// written by Save). Errors match ErrJournal.
func (j *Journal) Load(r io.Reader) error {
	var jf journalFile
	dec := json.NewDecoder(io.LimitReader(r, 64<<20))
	if err := dec.Decode(&jf); err != nil {
		return fmt.Errorf("%w: decode: %v", ErrJournal, err)
	}
	if jf.Version != 1 {
		return fmt.Errorf("%w: unsupported version %d", ErrJournal, jf.Version)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.arts = jf.Artifacts
	j.nextID = jf.NextID
	for _, a := range j.arts {
		j.nextID = max(j.nextID, a.ID)
	}
	return nil
}

// Save writes the journal to w as JSON.
func (j *Journal) Save(w io.Writer) error {
	j.mu.Lock()
	b, err := j.encodeLocked()
	j.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (j *Journal) encodeLocked() ([]byte, error) {
	jf := journalFile{Version: 1, NextID: j.nextID, Artifacts: j.arts}
	if jf.Artifacts == nil {
		jf.Artifacts = []Artifact{}
	}
	b, err := json.Marshal(jf)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %v", ErrJournal, err)
	}
	return append(b, '\n'), nil
}

// persist writes the file atomically; callers hold j.mu or own j.
func (j *Journal) persist() error {
	if j.path == "" {
		return nil
	}
	b, err := j.encodeLocked()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.path), filepath.Base(j.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("%w: write: %v", ErrJournal, err)
	}
	if err := os.Rename(tmp.Name(), j.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	return nil
}

// Record appends a and persists the journal. It fills in ID and Created
// and returns the recorded artifact. When persisting fails the artifact
// stays recorded in memory and the error (matching ErrJournal) is
// returned, so that the caller can decide not to go on.
func (j *Journal) Record(_ context.Context, a Artifact) (Artifact, error) {
	j.mu.Lock()
	j.nextID++
	a.ID = j.nextID
	if a.Created.IsZero() {
		a.Created = time.Now().UTC()
	}
	j.arts = append(j.arts, a)
	err := j.persist()
	hook := j.recorded
	j.mu.Unlock()
	if hook != nil {
		hook(a)
	}
	return a, err
}

// Resolve removes the artifact with id: it was undone, or it is no longer
// the journal's business (a temporary file renamed into place). Resolving
// an unknown id is not an error.
func (j *Journal) Resolve(_ context.Context, id uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, a := range j.arts {
		if a.ID == id {
			j.arts = append(j.arts[:i:i], j.arts[i+1:]...)
			return j.persist()
		}
	}
	return nil
}

// Artifacts returns a copy of the recorded artifacts, oldest first.
func (j *Journal) Artifacts() []Artifact {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Artifact(nil), j.arts...)
}

// Len returns the number of recorded artifacts.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.arts)
}

// UndoFunc undoes one artifact. It returns nil when the artifact is gone
// (already undone counts as undone), and ErrNotMine when the artifact is
// not one it can handle (another host, for example).
type UndoFunc func(ctx context.Context, a Artifact) error

// ErrNotMine is returned by an UndoFunc for an artifact it does not
// handle; Undo then reports the artifact as skipped.
var ErrNotMine = errors.New("deploy: artifact not handled by this undo function")

// Undoers maps artifact kinds to undo functions. A kind is looked up as
// is, then by its namespace: "remotereg.service" falls back to the
// function registered under "remotereg.".
type Undoers map[string]UndoFunc

func (u Undoers) lookup(kind string) UndoFunc { return lookupKind(u, kind) }

// lookupKind finds kind's entry in m, else its namespace's ("x." for
// "x.y"), else the zero value.
func lookupKind[F any](m map[string]F, kind string) F {
	if f, ok := m[kind]; ok {
		return f
	}
	if i := strings.IndexByte(kind, '.'); i > 0 {
		return m[kind[:i+1]]
	}
	var zero F
	return zero
}

// UndoFailure is an artifact that could not be undone, and why.
type UndoFailure struct {
	Artifact Artifact
	Err      error
}

// UndoReport says what Undo did, artifact by artifact, in the order it
// tried them (newest first).
type UndoReport struct {
	Undone  []Artifact    // undone (or already gone); removed from the journal
	Failed  []UndoFailure // still in the journal
	Skipped []Artifact    // no undo function took them; still in the journal
}

// OK reports whether every artifact was undone.
func (r UndoReport) OK() bool { return len(r.Failed) == 0 && len(r.Skipped) == 0 }

// Err joins the failures into one error, or returns nil.
func (r UndoReport) Err() error {
	var errs []error
	for _, f := range r.Failed {
		errs = append(errs, fmt.Errorf("undo %v: %w", f.Artifact, f.Err))
	}
	return errors.Join(errs...)
}

// Undo undoes the recorded artifacts in reverse order, best effort: a
// failure does not stop the others. Undone artifacts leave the journal;
// failed and skipped ones stay, so a later Undo can retry them. It stops
// early only when ctx ends (the rest are reported as failed with the
// context's error).
func (j *Journal) Undo(ctx context.Context, u Undoers) UndoReport {
	var rep UndoReport
	arts := j.Artifacts()
	for i := len(arts) - 1; i >= 0; i-- {
		a := arts[i]
		if err := ctx.Err(); err != nil {
			rep.Failed = append(rep.Failed, UndoFailure{a, err})
			continue
		}
		f := u.lookup(a.Kind)
		if f == nil {
			rep.Skipped = append(rep.Skipped, a)
			continue
		}
		err := f(ctx, a)
		switch {
		case errors.Is(err, ErrNotMine):
			rep.Skipped = append(rep.Skipped, a)
		case err != nil:
			rep.Failed = append(rep.Failed, UndoFailure{a, err})
		default:
			rep.Undone = append(rep.Undone, a)
			if rerr := j.Resolve(ctx, a.ID); rerr != nil {
				rep.Failed = append(rep.Failed, UndoFailure{a, rerr})
			}
		}
	}
	return rep
}

// FileUndoers returns the undo functions for the files and directories
// that Copy records, acting through g's session. Artifacts of other hosts
// are skipped (ErrNotMine). A directory that is not empty is left in
// place and reported as failed.
func FileUndoers(g *adauth.Grant) Undoers {
	undo := func(ctx context.Context, a Artifact) error {
		if g == nil || grantsess.Of(g) == nil {
			return ErrNoGrant
		}
		if !strings.EqualFold(a.Addr, g.Addr) {
			return ErrNotMine
		}
		sh, umount, err := mount(ctx, g, a.Share)
		if err != nil {
			return err
		}
		defer umount()
		err = sh.WithContext(ctx).Remove(a.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return Undoers{KindFile: undo, KindDir: undo}
}
