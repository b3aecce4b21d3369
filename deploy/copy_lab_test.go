package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func grantFor(t testing.TB, ctx context.Context, tg *testlab.Target, enc adauth.Encryption) *adauth.Grant {
	t.Helper()
	c, err := adauth.Parse(tg.Admin.User, tg.Admin.Password)
	if err != nil {
		t.Fatal(err)
	}
	g, err := (&adauth.SMBAuthenticator{Encryption: enc}).Authenticate(ctx, tg.Addr.String(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// onDisk maps a share path under ADMIN$ to the target's local file.
func onDisk(tg *testlab.Target, sharePath string) string {
	return filepath.Join(tg.AdminDir, filepath.FromSlash(strings.ReplaceAll(sharePath, `\`, "/")))
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func noPartials(t *testing.T, dir string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(dir, ".*.lcpart"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestCopyLab(t *testing.T) {
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {}, {Variant: testlab.EncryptRequired}}})
	std, victim, enc := lab.Targets[0], lab.Targets[1], lab.Targets[2]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g := grantFor(t, ctx, std, adauth.EncryptIfServerAsks)

	t.Run("copy, skip identical, replace, undo", func(t *testing.T) {
		content := randomBytes(t, 5<<20+12345)
		applet := AppletFromBytes("acme-applet.exe", "1.0", content)
		var j Journal
		var mu sync.Mutex
		var last int64
		calls := 0
		res, err := Copy(ctx, g, applet, CopyOptions{Dir: `Temp\lc-copy\sub`, Journal: &j, Progress: func(done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			if done < last || total != int64(len(content)) {
				t.Errorf("progress %d/%d after %d", done, total, last)
			}
			last, calls = done, calls+1
		}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Skipped || res.SHA256 != applet.SHA256 || res.Path != `Temp\lc-copy\sub\acme-applet.exe` ||
			res.LocalPath != `C:\Windows\Temp\lc-copy\sub\acme-applet.exe` || res.SharePath != `\\`+std.Addr.String()+`\ADMIN$\Temp\lc-copy\sub\acme-applet.exe` {
			t.Fatalf("result %+v", res)
		}
		if last != int64(len(content)) || calls < 2 {
			t.Fatalf("progress ended at %d after %d calls", last, calls)
		}
		if got := fileSHA(t, onDisk(std, res.Path)); got != applet.SHA256 {
			t.Fatalf("hash on the server's disk %s, want %s", got, applet.SHA256)
		}
		noPartials(t, filepath.Dir(onDisk(std, res.Path)))
		// Journal: the created directories, then the file; no temp file.
		var kinds []string
		for _, a := range j.Artifacts() {
			kinds = append(kinds, a.Kind+":"+a.Path)
		}
		if n := len(kinds); n < 3 || kinds[n-1] != `file:Temp\lc-copy\sub\acme-applet.exe` || kinds[n-2] != `dir:Temp\lc-copy\sub` || kinds[n-3] != `dir:Temp\lc-copy` {
			t.Fatalf("journal %v", kinds)
		}

		// The same applet again is not copied.
		res2, err := Copy(ctx, g, applet, CopyOptions{Dir: `Temp\lc-copy\sub`, Journal: &j})
		if err != nil || !res2.Skipped {
			t.Fatalf("second copy: %+v %v", res2, err)
		}
		if len(j.Artifacts()) != len(kinds) {
			t.Fatal("a skipped copy was journaled")
		}

		// A new version replaces it, verified by reading back.
		v2 := AppletFromBytes("acme-applet.exe", "2.0", randomBytes(t, 3<<20))
		res3, err := Copy(ctx, g, v2, CopyOptions{Dir: `Temp\lc-copy\sub`, Journal: &j, Verify: VerifyReadBack, Parallel: 2, ChunkSize: 256 << 10})
		if err != nil || res3.Skipped || res3.Verified != VerifyReadBack {
			t.Fatalf("replace: %+v %v", res3, err)
		}
		if got := fileSHA(t, onDisk(std, res3.Path)); got != v2.SHA256 {
			t.Fatal("replaced file has the wrong hash")
		}

		// Undo removes everything this test created, newest first.
		rep := j.Undo(ctx, FileUndoers(g))
		if !rep.OK() || j.Len() != 0 {
			t.Fatalf("undo: %+v", rep)
		}
		if _, err := os.Stat(filepath.Join(std.AdminDir, "Temp", "lc-copy")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("directory still there: %v", err)
		}
	})

	t.Run("wrong expected hash", func(t *testing.T) {
		a := AppletFromBytes("bad.exe", "1", randomBytes(t, 100<<10))
		a.SHA256 = strings.Repeat("ab", 32)
		var j Journal
		_, err := Copy(ctx, g, a, CopyOptions{Dir: `Temp\lc-hash`, Journal: &j})
		if !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("err = %v", err)
		}
		dir := filepath.Join(std.AdminDir, "Temp", "lc-hash")
		if _, err := os.Stat(filepath.Join(dir, "bad.exe")); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("file under the final name")
		}
		noPartials(t, dir)
		for _, a := range j.Artifacts() {
			if a.Kind == KindFile {
				t.Fatalf("file still journaled: %v", a)
			}
		}
		j.Undo(ctx, FileUndoers(g))
	})

	t.Run("cancel mid-copy", func(t *testing.T) {
		a := AppletFromBytes("cancel.exe", "1", randomBytes(t, 20<<20))
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		var j Journal
		_, err := Copy(cctx, g, a, CopyOptions{Dir: `Temp\lc-cancel`, Journal: &j, Progress: func(done, _ int64) {
			if done >= 2<<20 {
				ccancel()
			}
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		dir := filepath.Join(std.AdminDir, "Temp", "lc-cancel")
		if _, err := os.Stat(filepath.Join(dir, "cancel.exe")); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("file under the final name")
		}
		noPartials(t, dir)
		if rep := j.Undo(ctx, FileUndoers(g)); !rep.OK() {
			t.Fatalf("undo %+v", rep)
		}
		// The grant's session is still usable.
		if _, err := Copy(ctx, g, AppletFromBytes("after.exe", "1", []byte("ok")), CopyOptions{Dir: `Temp\lc-cancel`, Journal: &j}); err != nil {
			t.Fatal(err)
		}
		j.Undo(ctx, FileUndoers(g))
	})

	t.Run("smbd killed mid-copy", func(t *testing.T) {
		vg := grantFor(t, ctx, victim, adauth.EncryptIfServerAsks)
		a := AppletFromBytes("killed.exe", "1", randomBytes(t, 30<<20))
		j, err := OpenJournal(filepath.Join(t.TempDir(), "journal.json"))
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		_, err = Copy(ctx, vg, a, CopyOptions{Dir: `Temp\lc-kill`, Journal: j, Progress: func(done, _ int64) {
			if done >= 4<<20 {
				once.Do(func() {
					if err := victim.StopSMB(); err != nil {
						t.Errorf("stop smbd: %v", err)
					}
				})
			}
		}})
		var ce *CopyError
		if err == nil || !errors.As(err, &ce) {
			t.Fatalf("err = %v", err)
		}
		t.Logf("copy error: %v", err)
		dir := filepath.Join(victim.AdminDir, "Temp", "lc-kill")
		if _, err := os.Stat(filepath.Join(dir, "killed.exe")); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("file under the final name")
		}
		// The temporary file could not be removed: it is journaled, on disk.
		if ce.Leftover == "" || !errors.Is(err, smbconn.ErrConnLost) {
			t.Fatal("no leftover reported")
		}
		var tmp *Artifact
		for _, x := range j.Artifacts() {
			if x.Kind == KindFile {
				tmp = &x
			}
		}
		if tmp == nil || !strings.HasSuffix(tmp.Path, ".lcpart") {
			t.Fatalf("temp not journaled: %v", j.Artifacts())
		}
		// A later console (new process, new grant) cleans up.
		if err := victim.StartSMB(); err != nil {
			t.Fatal(err)
		}
		later, err := OpenJournal(j.path)
		if err != nil {
			t.Fatal(err)
		}
		g2 := grantFor(t, ctx, victim, adauth.EncryptIfServerAsks)
		rep := later.Undo(ctx, FileUndoers(g2))
		if !rep.OK() || later.Len() != 0 {
			t.Fatalf("undo %+v", rep)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("dir left: %v", err)
		}
	})

	t.Run("encrypted session", func(t *testing.T) {
		eg := grantFor(t, ctx, enc, adauth.EncryptRequired)
		a := AppletFromBytes("enc.exe", "1", randomBytes(t, 2<<20))
		var j Journal
		res, err := Copy(ctx, eg, a, CopyOptions{Dir: `Temp\lc-enc`, Journal: &j})
		if err != nil {
			t.Fatal(err)
		}
		if got := fileSHA(t, onDisk(enc, res.Path)); got != a.SHA256 {
			t.Fatal("hash mismatch on disk")
		}
		if rep := j.Undo(ctx, FileUndoers(eg)); !rep.OK() {
			t.Fatalf("%+v", rep)
		}
	})

	t.Run("copy and pipes share the session concurrently", func(t *testing.T) {
		a := AppletFromBytes("shared.exe", "1", randomBytes(t, 8<<20))
		var j Journal
		stop := make(chan struct{})
		pipeErr := make(chan error, 1)
		opened := 0
		go func() {
			defer close(pipeErr)
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := g.OpenPipe(ctx, "winreg")
				if err != nil {
					pipeErr <- err
					return
				}
				opened++
				t0 := time.Now()
				if err := p.Close(); err != nil {
					t.Logf("close after %v", time.Since(t0))
					pipeErr <- err
					return
				}
			}
		}()
		res, err := Copy(ctx, g, a, CopyOptions{Dir: `Temp\lc-shared`, Journal: &j, Parallel: 3})
		close(stop)
		if perr := <-pipeErr; perr != nil {
			t.Fatalf("pipe: %v", perr)
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := fileSHA(t, onDisk(std, res.Path)); got != a.SHA256 {
			t.Fatal("hash mismatch on disk")
		}
		t.Logf("pipes opened during the copy: %d", opened)
		if rep := j.Undo(ctx, FileUndoers(g)); !rep.OK() {
			t.Fatalf("%+v", rep)
		}
	})

	t.Run("applet from file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "from-file.exe")
		content := randomBytes(t, 777777)
		_ = os.WriteFile(p, content, 0o600)
		a, err := AppletFromFile("from-file.exe", "1", p)
		if err != nil {
			t.Fatal(err)
		}
		var j Journal
		res, err := Copy(ctx, g, a, CopyOptions{Dir: `Temp\lc-file`, Journal: &j})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(onDisk(std, res.Path))
		if !bytes.Equal(got, content) {
			t.Fatal("content differs")
		}
		j.Undo(ctx, FileUndoers(g))
	})
}
