package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrOutOfScope matches a journal that names something lanconnect does
// not make on a target (a service without the configured prefix, a key
// outside the parameter key's root, a path outside the applet's folder).
// Such a journal is refused whole: nothing in it is undone.
var ErrOutOfScope = errors.New("deploy: journal entry outside what lanconnect makes")

// CheckFunc reports whether one artifact lies within what lanconnect
// makes: nil, or an error saying why not.
type CheckFunc func(a Artifact) error

// Scope maps artifact kinds to their checks. A kind is looked up as is,
// then by its namespace ("remotereg.service" falls back to
// "remotereg."), as in Undoers. An artifact of a kind without a check is
// out of scope.
type Scope map[string]CheckFunc

func (s Scope) lookup(kind string) CheckFunc { return lookupKind(s, kind) }

// OutOfScope is one artifact that a Scope refused, and why.
type OutOfScope struct {
	Artifact Artifact
	Err      error
}

// ScopeError is a journal refused because some of its artifacts are out
// of scope; it lists them. It matches ErrOutOfScope.
type ScopeError struct {
	Out []OutOfScope
}

// Error names the refused artifacts (at most three) and says that nothing
// was undone.
func (e *ScopeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy: journal refused, nothing undone: %d of its entries are outside what lanconnect makes", len(e.Out))
	for i, o := range e.Out {
		if i == 3 {
			b.WriteString("; ...")
			break
		}
		fmt.Fprintf(&b, "; %v: %v", o.Artifact, o.Err)
	}
	return b.String()
}

// Unwrap returns ErrOutOfScope.
func (e *ScopeError) Unwrap() error { return ErrOutOfScope }

// Check checks every artifact against s and returns a *ScopeError listing
// those out of scope, or nil. It changes nothing.
func (s Scope) Check(arts []Artifact) error {
	var out []OutOfScope
	for _, a := range arts {
		f := s.lookup(a.Kind)
		if f == nil {
			out = append(out, OutOfScope{a, fmt.Errorf("kind %q is not one lanconnect records", a.Kind)})
			continue
		}
		if err := f(a); err != nil {
			out = append(out, OutOfScope{a, err})
		}
	}
	if len(out) > 0 {
		return &ScopeError{Out: out}
	}
	return nil
}

// UndoWithin is Undo restricted to s: it first checks every artifact of
// the journal, and when any is out of scope it undoes nothing and returns
// the *ScopeError (the journal is left as it is). Otherwise it undoes as
// Undo does and returns its report with a nil error.
func (j *Journal) UndoWithin(ctx context.Context, u Undoers, s Scope) (UndoReport, error) {
	if err := s.Check(j.Artifacts()); err != nil {
		return UndoReport{}, err
	}
	return j.Undo(ctx, u), nil
}

// FileScope returns the checks of the files and directories that Copy
// makes when its Dir is dir (the validated parent of the applet folders;
// "" for the root of ADMIN$): directories that are dir or one of its
// parents, applet folders dir\lanconnect-* (DefaultFolderPrefix), and
// files directly inside such a folder, all on ADMIN$. A path that climbs
// (..), names a stream (:) or lies anywhere else is out of scope. It
// fails when dir itself is not admin-only (see CheckFolder).
func FileScope(dir string) (Scope, error) {
	_, parent, err := CheckFolder(DefaultShare, dir)
	if err != nil {
		return nil, err
	}
	var parents []string
	if parent != "" {
		parts := strings.Split(parent, `\`)
		for i := range parts {
			parents = append(parents, strings.Join(parts[:i+1], `\`))
		}
	}
	check := func(a Artifact) error {
		if !strings.EqualFold(a.Share, DefaultShare) {
			return fmt.Errorf("share %q is not ADMIN$", a.Share)
		}
		p, err := cleanDir(a.Path)
		if err != nil || p == "" || p != strings.Trim(strings.ReplaceAll(a.Path, "/", `\`), `\`) {
			return fmt.Errorf("path %q is not a plain path under ADMIN$", a.Path)
		}
		rel := p
		if parent != "" {
			if !strings.HasPrefix(strings.ToLower(p), strings.ToLower(parent)+`\`) {
				if a.Kind == KindDir {
					for _, q := range parents {
						if strings.EqualFold(p, q) {
							return nil
						}
					}
				}
				return fmt.Errorf("path %q is not under the applet folders' parent ADMIN$\\%s", a.Path, parent)
			}
			rel = p[len(parent)+1:]
		}
		parts := strings.Split(rel, `\`)
		if !strings.HasPrefix(strings.ToLower(parts[0]), DefaultFolderPrefix) || len(parts[0]) == len(DefaultFolderPrefix) {
			return fmt.Errorf("path %q is not in an applet folder (%s*)", a.Path, DefaultFolderPrefix)
		}
		switch {
		case a.Kind == KindDir && len(parts) == 1:
			return nil
		case a.Kind == KindFile && len(parts) == 2:
			return nil
		}
		return fmt.Errorf("%s %q is not an applet folder or a file directly in one", a.Kind, a.Path)
	}
	return Scope{KindFile: check, KindDir: check}, nil
}
