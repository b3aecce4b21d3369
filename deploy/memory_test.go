package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// checkingWriter is a fake SMB file: it checks every WRITE against the
// applet's bytes at its offset and counts the bytes, allocating nothing.
type checkingWriter struct {
	want []byte
	mu   sync.Mutex
	n    int64
	bad  error
}

func (w *checkingWriter) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > int64(len(w.want)) || !bytes.Equal(b, w.want[off:off+int64(len(b))]) {
		w.mu.Lock()
		w.bad = fmt.Errorf("wrong bytes at %d (%d)", off, len(b))
		w.mu.Unlock()
		return 0, w.bad
	}
	w.mu.Lock()
	w.n += int64(len(b))
	w.mu.Unlock()
	return len(b), nil
}

// appletVariants returns the ways an applet of content can be described:
// the shared in-memory copy (AppletFromFile, AppletFromBytes), and, as
// they were before, a file read by every Copy and a vendor's own
// io.ReaderAt.
func appletVariants(t testing.TB, content []byte) map[string]Applet {
	p := filepath.Join(t.TempDir(), "applet.exe")
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := AppletFromFile("applet.exe", "1", p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	hexSum := hex.EncodeToString(sum[:])
	return map[string]Applet{
		"AppletFromFile (shared)":  fromFile,
		"AppletFromBytes (shared)": AppletFromBytes("applet.exe", "1", content),
		"Path (read per copy)":     {Name: "applet.exe", Path: p, Size: int64(len(content)), SHA256: hexSum},
		"own io.ReaderAt":          {Name: "applet.exe", Content: bytes.NewReader(content), Size: int64(len(content)), SHA256: hexSum},
	}
}

// sendConcurrently runs Copy's data path (open, then pipeline with
// DefaultParallel writes of DefaultChunkSize) for sessions concurrent
// copies of a, each into a checking fake file, and returns the bytes
// allocated per session.
func sendConcurrently(t testing.TB, a Applet, content []byte, sessions int) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for range sessions {
		wg.Go(func() {
			src, closeSrc, err := a.open()
			if err != nil {
				errs <- err
				return
			}
			defer closeSrc()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := &checkingWriter{want: content}
			sum, err := pipeline(ctx, cancel, w, src, DefaultChunkSize, DefaultParallel, newProgress(nil, src.size))
			if err == nil && (sum != a.SHA256 || w.n != int64(len(content))) {
				err = fmt.Errorf("sent %d bytes hashing to %s, want %d and %s", w.n, sum, len(content), a.SHA256)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return (after.TotalAlloc - before.TotalAlloc) / uint64(sessions)
}

// TestAppletOneCopyForAllSessions: sixteen concurrent copies of an 8 MiB
// applet made with AppletFromFile or AppletFromBytes allocate no buffer
// for the applet's bytes (under 64 KiB per session: goroutines and
// channels), where a file read by every copy, or a vendor's own ReaderAt,
// costs each session its Parallel+1 chunk buffers (5 MiB). The figures
// are logged (go test -v -run TestAppletOneCopy ./deploy/).
func TestAppletOneCopyForAllSessions(t *testing.T) {
	const size, sessions = 8 << 20, 16
	content := make([]byte, size)
	_, _ = rand.Read(content)
	variants := appletVariants(t, content)
	for _, name := range []string{"Path (read per copy)", "own io.ReaderAt", "AppletFromFile (shared)", "AppletFromBytes (shared)"} {
		per := sendConcurrently(t, variants[name], content, sessions)
		t.Logf("%-26s %d sessions x %d MiB applet: %8d bytes allocated per session", name, sessions, size>>20, per)
		shared := name == "AppletFromFile (shared)" || name == "AppletFromBytes (shared)"
		switch {
		case shared && per > 64<<10:
			t.Errorf("%s: %d bytes allocated per session, want under 64 KiB (no copy of the applet)", name, per)
		case !shared && per < (DefaultParallel+1)*DefaultChunkSize:
			t.Errorf("%s: %d bytes per session, expected its %d chunk buffers", name, per, DefaultParallel+1)
		}
	}
}

// BenchmarkAppletPerSession reports the allocation of one session's copy
// of an 8 MiB applet on Copy's data path, for each kind of applet.
func BenchmarkAppletPerSession(b *testing.B) {
	content := make([]byte, 8<<20)
	_, _ = rand.Read(content)
	for name, a := range appletVariants(b, content) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				src, closeSrc, err := a.open()
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				if _, err := pipeline(ctx, cancel, &checkingWriter{want: content}, src, DefaultChunkSize, DefaultParallel, newProgress(nil, src.size)); err != nil {
					b.Fatal(err)
				}
				cancel()
				closeSrc()
			}
		})
	}
}

// TestAppletFromFileHoldsWhatItHashed: the bytes sent are the bytes that
// AppletFromFile hashed, even when the file is replaced afterwards (by
// the technician's build, or by anyone who can write it): no second read
// of the file can slip other content under the recorded hash.
func TestAppletFromFileHoldsWhatItHashed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.exe")
	orig := []byte("MZ the applet that was hashed")
	if err := os.WriteFile(p, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := AppletFromFile("a.exe", "1", p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("MZ something else, and longer too"), 0o600); err != nil {
		t.Fatal(err)
	}
	if per := sendConcurrently(t, a, orig, 2); per > 64<<10 {
		t.Errorf("%d bytes per session", per)
	}
	// The shared content reads like any io.ReaderAt.
	buf := make([]byte, 8)
	if n, err := a.Content.ReadAt(buf, int64(len(orig))-4); n != 4 || err == nil || string(buf[:n]) != "shed" {
		t.Fatalf("ReadAt at the end: %d %v %q", n, err, buf[:n])
	}
	if _, err := a.Content.ReadAt(buf, -1); err == nil {
		t.Fatal("ReadAt at a negative offset succeeded")
	}
	// A Size that contradicts the content is refused.
	bad := a
	bad.Size++
	if _, _, err := bad.open(); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("open with a wrong Size: %v", err)
	}
}
