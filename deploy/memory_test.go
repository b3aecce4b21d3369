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
	"sync/atomic"
	"testing"
	"time"
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
	copyConcurrently(t, a, sessions, func() (writerAt, int, *WriteLimit, func(string) error) {
		w := &checkingWriter{want: content}
		return w, DefaultChunkSize, nil, func(sum string) error {
			if sum != a.SHA256 || w.n != int64(len(content)) {
				return fmt.Errorf("sent %d bytes hashing to %s, want %d and %s", w.n, sum, len(content), a.SHA256)
			}
			return nil
		}
	})
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(sessions)
}

// copyConcurrently runs sessions concurrent copies of a on Copy's data
// path (open, then pipeline with DefaultParallel writes); each session
// asks session() for its writer, chunk size, limit and a check of the
// result.
func copyConcurrently(t testing.TB, a Applet, sessions int, session func() (writerAt, int, *WriteLimit, func(sum string) error)) {
	t.Helper()
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
			w, chunk, lim, check := session()
			sum, err := pipeline(ctx, cancel, w, src, chunk, DefaultParallel, lim, newProgress(nil, src.size))
			if err == nil {
				err = check(sum)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestAppletOneCopyForAllSessions: eight concurrent copies of an 8 MiB
// applet made with AppletFromFile or AppletFromBytes allocate no buffer
// for the applet's bytes (under 64 KiB per session: goroutines and
// channels), where a file read by every copy, or a vendor's own ReaderAt,
// costs each session its Parallel+1 chunk buffers (5 MiB). The figures
// are logged (go test -v -run TestAppletOneCopy ./deploy/).
func TestAppletOneCopyForAllSessions(t *testing.T) {
	const size, sessions = 8 << 20, 8
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
				if _, err := pipeline(ctx, cancel, &checkingWriter{want: content}, src, DefaultChunkSize, DefaultParallel, nil, newProgress(nil, src.size)); err != nil {
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

// packetWriter imitates go-smb2's WRITE: it builds a packet of its own
// (a copy of the data), holds it until the "server" answers (a short
// wait), and counts the packets alive at once across every copy.
type packetWriter struct {
	live, peak *atomic.Int64 // packet bytes alive, shared
}

func (w packetWriter) WriteAt(b []byte, off int64) (int, error) {
	pkt := make([]byte, len(b)+64)
	copy(pkt[64:], b)
	n := w.live.Add(int64(len(pkt)))
	for {
		p := w.peak.Load()
		if n <= p || w.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(time.Millisecond) // the round trip
	w.live.Add(-int64(len(pkt)))
	runtime.KeepAlive(pkt)
	return len(b), nil
}

// peakPackets runs sessions concurrent copies of a through packetWriters,
// in WRITEs of chunk bytes, under lim and returns the peak bytes of
// packets alive at once.
func peakPackets(t *testing.T, a Applet, sessions, chunk int, lim *WriteLimit) int64 {
	var live, peak atomic.Int64
	copyConcurrently(t, a, sessions, func() (writerAt, int, *WriteLimit, func(string) error) {
		return packetWriter{&live, &peak}, chunk, lim, func(string) error { return nil }
	})
	return peak.Load()
}

// TestWriteLimitBoundsPacketsInFlight: 64 concurrent copies keep at most
// DefaultWriteLimit WRITE packets alive together under a shared
// WriteLimit, where without one each copy keeps its Parallel packets (up
// to 256 of them). The figures are logged. (The chunks are 64 KiB to keep
// the test fast; with go-smb2's 1 MiB WRITEs a packet is 1 MiB.)
func TestWriteLimitBoundsPacketsInFlight(t *testing.T) {
	const sessions, chunk = 64, 64 << 10
	content := make([]byte, 1<<20)
	_, _ = rand.Read(content)
	a := AppletFromBytes("applet.exe", "1", content)
	lim := NewWriteLimit(DefaultWriteLimit)
	limited := peakPackets(t, a, sessions, chunk, lim)
	unlimited := peakPackets(t, a, sessions, chunk, nil)
	t.Logf("%d concurrent copies: peak WRITE packets alive %d with a shared WriteLimit(%d), %d without",
		sessions, limited/(chunk+64), DefaultWriteLimit, unlimited/(chunk+64))
	if max := int64(DefaultWriteLimit) * (chunk + 64); limited > max {
		t.Fatalf("peak %d bytes of packets alive under the limit, want at most %d", limited, max)
	}
	if len(lim.tokens) != 0 {
		t.Fatalf("%d tokens still held after every copy ended", len(lim.tokens))
	}
	// One Copy alone never waits for the shared limit: its own Parallel
	// fits under it, so the limit costs a one-host copy nothing.
	if DefaultWriteLimit < DefaultParallel {
		t.Fatalf("DefaultWriteLimit %d is below DefaultParallel %d: a lone Copy would wait", DefaultWriteLimit, DefaultParallel)
	}
	// A cancelled copy waiting for its turn returns at once.
	full := NewWriteLimit(1)
	full.tokens <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src, _, _ := a.open()
	if _, err := pipeline(ctx, cancel, packetWriter{new(atomic.Int64), new(atomic.Int64)}, src, DefaultChunkSize, DefaultParallel, full, newProgress(nil, src.size)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy under a full limit: %v", err)
	}
}
