package testlab

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Snapshot describes, byte for byte, what a session could change on the
// target: every file and directory under its C: directory (the trees of
// ADMIN$ and C$: path, type and mode, size, modification time and the
// SHA-256 of each file's content) and Samba's registry (tdbdump of every
// registry.tdb under the target's directory, records sorted; none on a
// target that runs no smbd). Two equal
// snapshots mean the target's shares and registry are as they were;
// Diff says what differs. Access times are left out: reading changes
// them. It does not cover processes or services (winemu reports those).
func (t *Target) Snapshot(ctx context.Context) (string, error) {
	var lines []string
	err := filepath.WalkDir(t.CDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(t.CDir, p)
		line := fmt.Sprintf("file %s %v %d %d", rel, st.Mode(), st.Size(), st.ModTime().UnixNano())
		if st.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("testlab: snapshot of %s: %w", t.CDir, err)
	}
	var tdbs []string
	_ = filepath.WalkDir(t.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "registry.tdb" && !strings.HasPrefix(p, t.CDir) {
			tdbs = append(tdbs, p)
		}
		return nil
	})
	if len(tdbs) == 0 && !t.NoSMB {
		return "", fmt.Errorf("testlab: snapshot: no registry.tdb under %s", t.dir)
	}
	sort.Strings(tdbs)
	for _, p := range tdbs {
		out, err := run(ctx, nil, nil, "tdbdump", p)
		if err != nil {
			return "", err
		}
		recs := strings.Split(strings.TrimSpace(string(out)), "\n}\n")
		sort.Strings(recs)
		rel, _ := filepath.Rel(t.dir, p)
		for _, r := range recs {
			lines = append(lines, "tdb "+rel+" "+strings.ReplaceAll(r, "\n", " "))
		}
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// Diff returns the lines of snapshot b that are not in a, each with
// "+ ", and those of a not in b, each with "- "; empty when they are
// equal.
func Diff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
