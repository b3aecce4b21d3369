package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJournalUndoReverseBestEffort(t *testing.T) {
	ctx := context.Background()
	var j Journal // zero value: in memory
	for _, a := range []Artifact{
		{Kind: KindDir, Addr: "h", Share: "ADMIN$", Path: `Temp\x`},
		{Kind: KindFile, Addr: "h", Share: "ADMIN$", Path: `Temp\x\a.exe`},
		{Kind: "remotereg.service", Addr: "h", Name: "lc-svc"},
		{Kind: "wmi.process", Addr: "h", Name: "pid 4"},
		{Kind: KindFile, Addr: "other", Share: "ADMIN$", Path: `b.exe`},
	} {
		if _, err := j.Record(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	boom := errors.New("boom")
	u := Undoers{
		KindFile: func(_ context.Context, a Artifact) error {
			if a.Addr != "h" {
				return ErrNotMine
			}
			order = append(order, a.Path)
			return nil
		},
		KindDir: func(_ context.Context, a Artifact) error {
			order = append(order, a.Path)
			return boom
		},
		"remotereg.": func(_ context.Context, a Artifact) error {
			order = append(order, a.Name)
			return nil
		},
	}
	rep := j.Undo(ctx, u)
	if got := strings.Join(order, ","); got != `lc-svc,Temp\x\a.exe,Temp\x` {
		t.Fatalf("order %s", got)
	}
	if len(rep.Undone) != 2 || len(rep.Failed) != 1 || len(rep.Skipped) != 2 || rep.OK() || !errors.Is(rep.Err(), boom) {
		t.Fatalf("report %+v", rep)
	}
	// Failed and skipped stay for a later run.
	if j.Len() != 3 {
		t.Fatalf("left %d: %v", j.Len(), j.Artifacts())
	}
	rep = j.Undo(ctx, Undoers{KindDir: func(context.Context, Artifact) error { return nil }, KindFile: func(context.Context, Artifact) error { return nil }, "wmi.": func(context.Context, Artifact) error { return nil }})
	if !rep.OK() || j.Len() != 0 {
		t.Fatalf("second undo %+v left %d", rep, j.Len())
	}
}

func TestJournalUndoCancelled(t *testing.T) {
	var j Journal
	_, _ = j.Record(context.Background(), Artifact{Kind: KindFile, Addr: "h", Path: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep := j.Undo(ctx, Undoers{KindFile: func(context.Context, Artifact) error { t.Fatal("called"); return nil }})
	if len(rep.Failed) != 1 || !errors.Is(rep.Failed[0].Err, context.Canceled) || j.Len() != 1 {
		t.Fatalf("%+v", rep)
	}
}

func TestJournalPersistsAndReloads(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.json")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := j.Record(ctx, Artifact{Kind: KindDir, Addr: "h", Share: "ADMIN$", Path: `Temp\x`})
	a2, _ := j.Record(ctx, Artifact{Kind: "remotereg.service", Addr: "h", Name: "svc", Data: []byte(`{"start_type":3}`)})
	a3, _ := j.Record(ctx, Artifact{Kind: KindFile, Addr: "h", Share: "ADMIN$", Path: `Temp\x\.a.lcpart`})
	if err := j.Resolve(ctx, a3.ID); err != nil {
		t.Fatal(err)
	}
	// A "crashed" console: a new process opens the same file.
	k, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	got := k.Artifacts()
	if len(got) != 2 || got[0].ID != a1.ID || got[1].ID != a2.ID || string(got[1].Data) != `{"start_type":3}` || got[0].Created.IsZero() {
		t.Fatalf("reloaded %+v", got)
	}
	a4, _ := k.Record(ctx, Artifact{Kind: KindFile, Addr: "h", Path: "b"})
	if a4.ID <= a3.ID {
		t.Fatalf("id reused: %d", a4.ID)
	}
	var buf bytes.Buffer
	if err := k.Save(&buf); err != nil || !strings.Contains(buf.String(), `"version":1`) {
		t.Fatalf("save: %v %s", err, buf.String())
	}
	// No temporary files are left next to the journal.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("dir: %v", entries)
	}
}

func TestJournalBadFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"garbage": "{not json", "version": `{"version":9,"artifacts":[]}`} {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, []byte(content), 0o600)
		if _, err := OpenJournal(p); !errors.Is(err, ErrJournal) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := OpenJournal(filepath.Join(dir, "no", "such", "dir", "j.json")); !errors.Is(err, ErrJournal) {
		t.Errorf("unwritable: %v", err)
	}
}

func TestAppletValidate(t *testing.T) {
	good := AppletFromBytes("a.exe", "1", []byte("x"))
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []Applet{
		{Name: "", Content: good.Content},
		{Name: `..`, Content: good.Content},
		{Name: `dir\a.exe`, Content: good.Content},
		{Name: "a.exe"},
		{Name: "a.exe", Content: good.Content, SHA256: "abc"},
	} {
		if err := a.Validate(); !errors.Is(err, ErrBadApplet) {
			t.Errorf("%+v: %v", a, err)
		}
	}
	p := filepath.Join(t.TempDir(), "a.bin")
	_ = os.WriteFile(p, []byte("hello"), 0o600)
	fa, err := AppletFromFile("a.bin", "2", p)
	if err != nil || fa.Size != 5 || fa.SHA256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("%+v %v", fa, err)
	}
	if _, err := AppletFromFile("x", "", filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrBadApplet) {
		t.Fatal(err)
	}
}

func TestCleanDir(t *testing.T) {
	for in, want := range map[string]string{`Temp\acme`: `Temp\acme`, `/Temp/acme/`: `Temp\acme`, `.\Temp\.\x`: `Temp\x`, ``: ``} {
		if got, err := cleanDir(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{`..\x`, `Temp\..\..\x`, `a:b`, `a*`} {
		if _, err := cleanDir(bad); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// Artifact.Addr keeps the JSON name "host" it had as Artifact.Host, so
// journal files written before the rename still load, and new ones read
// the same (issue 21 §11).
func TestArtifactAddrJSONCompat(t *testing.T) {
	old := `{"version":1,"next_id":2,"artifacts":[` +
		`{"id":1,"kind":"file","host":"10.1.2.3","share":"ADMIN$","path":"lanconnect-s1.k3x9\\a.exe","created":"2026-11-01T10:00:00Z"},` +
		`{"id":2,"kind":"remotereg.service","host":"pc1.corp.example","name":"lanconnect-0a1b2c3d","data":{"transport":"pipe"},"created":"2026-11-01T10:00:01Z"}]}` + "\n"
	var j Journal
	if err := j.Load(strings.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	arts := j.Artifacts()
	if len(arts) != 2 || arts[0].Addr != "10.1.2.3" || arts[1].Addr != "pc1.corp.example" {
		t.Fatalf("loaded %+v", arts)
	}
	var buf bytes.Buffer
	if err := j.Save(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != old {
		t.Fatalf("saved\n%s\nwant\n%s", buf.String(), old)
	}
	b, err := json.Marshal(Artifact{Kind: KindDir, Addr: "h"})
	if err != nil || !strings.Contains(string(b), `"host":"h"`) || strings.Contains(string(b), `"addr"`) {
		t.Fatalf("marshal %s, %v", b, err)
	}
}
