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
	"github.com/lanconnect/lanconnect/diag"
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

	t.Run("copy into a new folder under ADMIN$, undo", func(t *testing.T) {
		content := randomBytes(t, 5<<20+12345)
		applet := AppletFromBytes("acme-applet.exe", "1.0", content)
		var j Journal
		var mu sync.Mutex
		var last int64
		calls := 0
		res, err := Copy(ctx, g, applet, CopyOptions{Journal: &j, Progress: func(done, total int64) {
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
		// The folder is new, directly under ADMIN$ (C:\Windows), never Temp.
		if res.Skipped || res.SHA256 != applet.SHA256 || !strings.HasPrefix(res.Folder, DefaultFolderPrefix) || strings.Contains(res.Folder, `\`) ||
			res.Path != res.Folder+`\acme-applet.exe` || res.LocalPath != `C:\Windows\`+res.Path || res.SharePath != `\\`+std.Addr.String()+`\ADMIN$\`+res.Path {
			t.Fatalf("result %+v", res)
		}
		onTarget := onDisk(std, res.Path)
		if filepath.Dir(filepath.Dir(onTarget)) != std.AdminDir {
			t.Fatalf("applet at %s, not in a folder directly under ADMIN$ (%s)", onTarget, std.AdminDir)
		}
		if last != int64(len(content)) || calls < 2 {
			t.Fatalf("progress ended at %d after %d calls", last, calls)
		}
		if got := fileSHA(t, onTarget); got != applet.SHA256 {
			t.Fatalf("hash on the server's disk %s, want %s", got, applet.SHA256)
		}
		noPartials(t, filepath.Dir(onTarget))
		// Journal: the folder, then the file; no temp file.
		var kinds []string
		for _, a := range j.Artifacts() {
			kinds = append(kinds, a.Kind+":"+a.Path)
		}
		if len(kinds) != 2 || kinds[0] != "dir:"+res.Folder || kinds[1] != "file:"+res.Path {
			t.Fatalf("journal %v", kinds)
		}

		// The same folder again is refused and left alone.
		_, err = Copy(ctx, g, applet, CopyOptions{Folder: res.Folder, Journal: &j})
		var ce *CopyError
		if !errors.Is(err, ErrFolderExists) || !errors.As(err, &ce) || ce.Diagnosis.Code != diag.AppletFolderExists {
			t.Fatalf("second copy into the folder: %v", err)
		}
		if len(j.Artifacts()) != len(kinds) {
			t.Fatalf("a refused copy was journaled: %v", j.Artifacts())
		}
		if got := fileSHA(t, onTarget); got != applet.SHA256 {
			t.Fatal("the refused copy touched the folder")
		}

		// A custom parent under ADMIN$: created, journaled, verified by
		// reading back.
		v2 := AppletFromBytes("acme-applet.exe", "2.0", randomBytes(t, 3<<20))
		res3, err := Copy(ctx, g, v2, CopyOptions{Dir: `Acme/Sessions`, Folder: "lanconnect-custom", Journal: &j, Verify: VerifyReadBack, Parallel: 2, ChunkSize: 256 << 10})
		if err != nil || res3.Verified != VerifyReadBack || res3.Path != `Acme\Sessions\lanconnect-custom\acme-applet.exe` {
			t.Fatalf("custom folder: %+v %v", res3, err)
		}
		if got := fileSHA(t, onDisk(std, res3.Path)); got != v2.SHA256 {
			t.Fatal("copied file has the wrong hash")
		}

		// Undo removes everything this test created, newest first.
		rep := j.Undo(ctx, FileUndoers(g))
		if !rep.OK() || j.Len() != 0 {
			t.Fatalf("undo: %+v", rep)
		}
		for _, d := range []string{filepath.Dir(onTarget), filepath.Join(std.AdminDir, "Acme")} {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s still there: %v", d, err)
			}
		}
	})

	t.Run("a folder prepared by someone else is refused", func(t *testing.T) {
		// What a local user would do if they could write there: make the
		// folder first and plant a DLL in it.
		dir := filepath.Join(std.AdminDir, "lanconnect-planted")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := os.WriteFile(filepath.Join(dir, "version.dll"), []byte("evil"), 0o666); err != nil {
			t.Fatal(err)
		}
		var j Journal
		_, err := Copy(ctx, g, AppletFromBytes("a.exe", "1", []byte("applet")), CopyOptions{Folder: "lanconnect-planted", Journal: &j})
		if !errors.Is(err, ErrFolderExists) {
			t.Fatalf("err = %v", err)
		}
		t.Logf("refused: %v", err)
		if j.Len() != 0 {
			t.Fatalf("journal %v", j.Artifacts())
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || entries[0].Name() != "version.dll" {
			t.Fatalf("folder touched: %v", entries)
		}
	})

	t.Run("folders that are not admin-only are refused", func(t *testing.T) {
		for _, o := range []CopyOptions{
			{Dir: `Temp`}, {Dir: `temp\lanconnect`}, {Dir: `/Temp/`}, {Dir: `System32\Tasks`}, {Share: "C$"}, {Share: "C$", Dir: `Windows`},
		} {
			var j Journal
			o.Journal = &j
			_, err := Copy(ctx, g, AppletFromBytes("a.exe", "1", []byte("applet")), o)
			var ce *CopyError
			if !errors.Is(err, ErrUnsafeFolder) || !errors.Is(err, ErrBadOptions) || !errors.As(err, &ce) || ce.Diagnosis.Code != diag.AppletFolderUnsafe {
				t.Errorf("share %q dir %q: %v", o.Share, o.Dir, err)
			}
			if j.Len() != 0 {
				t.Errorf("share %q dir %q journaled %v", o.Share, o.Dir, j.Artifacts())
			}
		}
		if entries, _ := os.ReadDir(filepath.Join(std.AdminDir, "Temp")); len(entries) != 0 {
			t.Fatalf("created under Temp: %v", entries)
		}
	})

	t.Run("cancel inside the folder's mkdir", func(t *testing.T) {
		// The journal's intent is persisted, then smbd is frozen before
		// the CREATE goes out; once the request waits in smbd's socket
		// the copy is cancelled, and smbd is let go: it creates the
		// folder after the client gave up. Copy must remove it by name.
		jf := filepath.Join(t.TempDir(), "journal.json")
		j, err := OpenJournal(jf)
		if err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		thawed := make(chan error, 1)
		var once sync.Once
		j.recorded = func(a Artifact) {
			if a.Kind != KindDir {
				return
			}
			once.Do(func() {
				// The intent is on disk before the create.
				b, err := os.ReadFile(jf)
				if err != nil || !strings.Contains(string(b), a.Path) {
					t.Errorf("intent not persisted before the create: %v %s", err, b)
				}
				thaw, err := std.FreezeSMB()
				if err != nil {
					t.Errorf("freeze: %v", err)
					thawed <- err
					return
				}
				go func() {
					wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					defer cancel()
					err := std.WaitSMBQueued(wctx)
					ccancel()
					thawed <- errors.Join(err, thaw())
				}()
			})
		}
		_, err = Copy(cctx, g, AppletFromBytes("c.exe", "1", []byte("applet")), CopyOptions{Folder: "lanconnect-mkdircancel", Journal: j})
		if terr := <-thawed; terr != nil {
			t.Fatalf("freeze/thaw: %v", terr)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		dir := filepath.Join(std.AdminDir, "lanconnect-mkdircancel")
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("folder left after the cancelled create: %v", err)
		}
		// The journal agrees, and undoing it (again) is a success.
		later, err := OpenJournal(jf)
		if err != nil {
			t.Fatal(err)
		}
		if rep := later.Undo(ctx, FileUndoers(g)); !rep.OK() || later.Len() != 0 {
			t.Fatalf("undo %+v", rep)
		}
		// The grant's session is still usable.
		var j2 Journal
		if _, err := Copy(ctx, g, AppletFromBytes("after.exe", "1", []byte("ok")), CopyOptions{Journal: &j2}); err != nil {
			t.Fatal(err)
		}
		j2.Undo(ctx, FileUndoers(g))
	})

	t.Run("wrong expected hash", func(t *testing.T) {
		a := AppletFromBytes("bad.exe", "1", randomBytes(t, 100<<10))
		a.SHA256 = strings.Repeat("ab", 32)
		var j Journal
		_, err := Copy(ctx, g, a, CopyOptions{Folder: "lanconnect-hash", Journal: &j})
		if !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("err = %v", err)
		}
		dir := filepath.Join(std.AdminDir, "lanconnect-hash")
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
		_, err := Copy(cctx, g, a, CopyOptions{Folder: "lanconnect-cancel", Journal: &j, Progress: func(done, _ int64) {
			if done >= 2<<20 {
				ccancel()
			}
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		dir := filepath.Join(std.AdminDir, "lanconnect-cancel")
		if _, err := os.Stat(filepath.Join(dir, "cancel.exe")); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("file under the final name")
		}
		noPartials(t, dir)
		if rep := j.Undo(ctx, FileUndoers(g)); !rep.OK() {
			t.Fatalf("undo %+v", rep)
		}
		// The grant's session is still usable.
		if _, err := Copy(ctx, g, AppletFromBytes("after.exe", "1", []byte("ok")), CopyOptions{Folder: "lanconnect-cancel", Journal: &j}); err != nil {
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
		_, err = Copy(ctx, vg, a, CopyOptions{Folder: "lanconnect-kill", Journal: j, Progress: func(done, _ int64) {
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
		dir := filepath.Join(victim.AdminDir, "lanconnect-kill")
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
		res, err := Copy(ctx, eg, a, CopyOptions{Folder: "lanconnect-enc", Journal: &j})
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
		res, err := Copy(ctx, g, a, CopyOptions{Folder: "lanconnect-shared", Journal: &j, Parallel: 3})
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
		res, err := Copy(ctx, g, a, CopyOptions{Folder: "lanconnect-file", Journal: &j})
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
