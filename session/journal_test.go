package session

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lanconnect/lanconnect/deploy"
)

func TestJournalInMemory(t *testing.T) {
	c := &Client{}
	j, path, err := c.newJournal("s1")
	if err != nil || j == nil || path != "" {
		t.Fatalf("journal %v, path %q, %v", j, path, err)
	}
	if cl := c.undoJournal(context.Background(), j, path, nil); !cl.Clean() || len(cl.Undone) != 0 {
		t.Fatalf("empty journal's cleanup %+v", cl)
	}
}

func TestJournalDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	files, err := deploy.FileScope("")
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{cfg: Config{JournalDir: dir, UndoScope: files}}

	// A clean session: the file exists from the start and goes at the end.
	j, path, err := c.newJournal("s1")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "s1.json"); path != want {
		t.Fatalf("path %q, want %q", path, want)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("journal not persisted at once: %v", err)
	}
	if cl := c.undoJournal(ctx, j, path, nil); !cl.Clean() {
		t.Fatalf("cleanup %+v", cl)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("clean journal's file still there: %v", err)
	}

	// A session that leaves something: the file stays, with the artifact,
	// for a later cleanup.
	j, path, err = c.newJournal("s2")
	if err != nil {
		t.Fatal(err)
	}
	j.Record(ctx, deploy.Artifact{Kind: deploy.KindFile, Addr: "10.1.2.3", Share: "ADMIN$", Path: `lanconnect-s2-0a1b2c3d\lcapplet-s2.exe`})
	cl := c.undoJournal(ctx, j, path, nil) // no grant: the file cannot be removed
	if cl.Clean() || len(cl.Left) != 1 || cl.Left[0].What != `file ADMIN$\lanconnect-s2-0a1b2c3d\lcapplet-s2.exe` || !errors.Is(cl.Left[0].Err, deploy.ErrNoGrant) {
		t.Fatalf("cleanup %+v", cl)
	}
	// A kind outside the scope: the whole journal is refused, and each
	// entry reported as left.
	j.Record(ctx, deploy.Artifact{Kind: "acme.thing", Addr: "10.1.2.3", Name: "widget"})
	cl = c.undoJournal(ctx, j, path, nil)
	if cl.Clean() || len(cl.Left) != 2 {
		t.Fatalf("cleanup %+v", cl)
	}
	if cl.Left[1].What != "acme.thing widget" || !errors.Is(cl.Left[1].Err, deploy.ErrOutOfScope) || !errors.Is(cl.Left[0].Err, deploy.ErrOutOfScope) {
		t.Errorf("left %+v", cl.Left)
	}
	reloaded, err := deploy.OpenJournal(path)
	if err != nil || reloaded.Len() != 2 {
		t.Fatalf("kept journal: %v, %v", reloaded, err)
	}

	// Another client over the same directory reopens the session's file.
	j, _, err = (&Client{cfg: Config{JournalDir: dir}}).newJournal("s2")
	if err != nil || j.Len() != 2 {
		t.Fatalf("reopened: %v", err)
	}

	// Session IDs that are not plain file names are refused.
	for _, id := range []string{"", "..", "../s3", "a/b"} {
		if _, _, err := c.newJournal(id); err == nil {
			t.Errorf("session ID %q accepted as a journal file name", id)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "*.json")); len(files) != 0 {
		t.Errorf("journal written outside its directory: %v", files)
	}
}

func TestCleanupReport(t *testing.T) {
	boom := errors.New("boom")
	c := cleanupReport(deploy.UndoReport{
		Undone:  []deploy.Artifact{{Kind: "file", Share: "ADMIN$", Path: `Temp\a.exe`}, {Kind: "remotereg.service", Name: "lanconnect-1a2b"}},
		Failed:  []deploy.UndoFailure{{Artifact: deploy.Artifact{Kind: "dir", Share: "ADMIN$", Path: `Temp\lanconnect`}, Err: boom}},
		Skipped: []deploy.Artifact{{Kind: "acme.x"}},
	})
	if want := []string{`file ADMIN$\Temp\a.exe`, "remotereg.service lanconnect-1a2b"}; !reflect.DeepEqual(c.Undone, want) {
		t.Errorf("undone %q", c.Undone)
	}
	if len(c.Left) != 2 || c.Left[0].What != `dir ADMIN$\Temp\lanconnect` || c.Left[0].Err != boom || c.Left[1].What != "acme.x" {
		t.Errorf("left %+v", c.Left)
	}
}
