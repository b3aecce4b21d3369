package deploy

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// PutFile writes a small file into an existing folder of ADMIN$, journaled
// before it is created, replaces it on a second call, and the journal's
// undo removes it.
func TestPutFileLab(t *testing.T) {
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tg := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g := grantFor(t, ctx, tg, adauth.EncryptIfServerAsks)
	if err := os.MkdirAll(onDisk(tg, `lc-put`), 0o755); err != nil {
		t.Fatal(err)
	}
	var j Journal
	for _, content := range []string{`{"token":"first"}`, `{"token":"second, longer"}`} {
		if err := PutFile(ctx, g, "", `lc-put\s1.ticket`, []byte(content), &j); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(onDisk(tg, `lc-put\s1.ticket`))
		if err != nil || string(got) != content {
			t.Fatalf("on disk %q (%v), want %q", got, err, content)
		}
	}
	if a := j.Artifacts(); len(a) != 2 || a[0].Kind != KindFile || a[0].Path != `lc-put\s1.ticket` || a[0].Share != "ADMIN$" {
		t.Fatalf("journal %+v", a)
	}
	// No directory is created, and nothing outside the share is reached.
	var ce *CopyError
	if err := PutFile(ctx, g, "", `lc-missing\s1.ticket`, []byte("x"), nil); !errors.As(err, &ce) || ce.Op != "stat directory" {
		t.Fatalf("missing folder: %v", err)
	}
	if err := PutFile(ctx, g, "", `..\s1.ticket`, []byte("x"), nil); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("climbing out: %v", err)
	}
	rep := j.Undo(ctx, FileUndoers(g))
	if !rep.OK() {
		t.Fatalf("undo %+v", rep)
	}
	if _, err := os.Stat(onDisk(tg, `lc-put\s1.ticket`)); !os.IsNotExist(err) {
		t.Fatalf("file left after undo: %v", err)
	}
}
