package deploy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	smb2 "github.com/oiweiwei/go-smb2.fork"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/grantsess"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// VerifyMode selects how Copy proves that the file on the target is the
// applet.
type VerifyMode int

// Verification modes. The zero value is VerifySigned.
const (
	// VerifySigned hashes the content as it is sent and checks it against
	// Applet.SHA256, relies on the session's SMB signing or encryption (a
	// MAC over every WRITE, checked by the server) and on the server's
	// acknowledged byte counts for transport integrity, and checks the
	// file's size on the target before the rename. It costs no extra
	// transfer. Copy uses VerifyReadBack instead on a session that is
	// neither signed nor encrypted.
	VerifySigned VerifyMode = iota
	// VerifyReadBack also reads the whole file back and checks its
	// SHA-256, which additionally catches corruption on the server's side
	// at the cost of a second transfer.
	VerifyReadBack
)

// String names the mode.
func (m VerifyMode) String() string {
	if m == VerifyReadBack {
		return "read-back"
	}
	return "signed"
}

// Defaults of CopyOptions.
const (
	DefaultShare = "ADMIN$"
	// DefaultDir is the parent of the applet's folder: "" is the root of
	// ADMIN$ (C:\Windows), where only SYSTEM and Administrators may
	// create folders.
	DefaultDir        = ""
	DefaultSystemRoot = `C:\Windows`
	DefaultParallel   = 4
	DefaultChunkSize  = 1 << 20 // go-smb2 never sends more in one WRITE
	// DefaultWriteLimit is the number of WRITE requests that
	// standard.Apply lets the sessions of one Config have in flight
	// together (see WriteLimit). It is at least DefaultParallel, so one
	// Copy alone never waits for it. Each WRITE in flight holds about two
	// ChunkSize packets of go-smb2's (the encrypted one until the server
	// answers), which the garbage collector's slack about doubles (see
	// docs/design.md, 2026-12-06, what a 64-host bulk connect holds).
	DefaultWriteLimit = 8
)

// WriteLimit bounds the WRITE requests in flight across every Copy that
// shares it (CopyOptions.WriteLimit), whatever their Parallel. go-smb2
// builds (and, on an encrypted session, encrypts) a packet of its own for
// every WRITE and holds it until the server answers, so each Copy keeps
// Parallel × ChunkSize bytes alive while it runs: 4 MiB by default, 256
// MiB for 64 concurrent copies. A limit of n shared by the sessions of a
// bulk connect bounds that to n × ChunkSize in all; the wire is shared
// anyway. Build it with NewWriteLimit. A nil or zero WriteLimit does not
// limit. It is safe for concurrent use.
type WriteLimit struct {
	tokens chan struct{}
}

// NewWriteLimit returns a limit of n WRITE requests in flight (at least
// one).
func NewWriteLimit(n int) *WriteLimit {
	return &WriteLimit{tokens: make(chan struct{}, max(n, 1))}
}

// acquire waits for a WRITE's turn, or for ctx.
func (l *WriteLimit) acquire(ctx context.Context) error {
	if l == nil || l.tokens == nil {
		return nil
	}
	select {
	case l.tokens <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *WriteLimit) release() {
	if l != nil && l.tokens != nil {
		<-l.tokens
	}
}

// CopyOptions tune Copy. The zero value copies into a new folder
// ADMIN$\lanconnect-<random> (C:\Windows\lanconnect-<random>) with four
// writes in flight and VerifySigned.
type CopyOptions struct {
	// Share is the administrative share; "" means ADMIN$, and any other
	// share is refused (ErrUnsafeFolder): only ADMIN$ is writable by
	// administrators alone.
	Share string
	// Dir is the parent, under Share, of the applet's folder
	// (backslashes or slashes); "" means the share's root. It must not be
	// Temp or another folder ordinary users may write in (see
	// CheckFolder). Missing components are created and journaled.
	Dir string
	// Folder is the name of the applet's folder, created in Dir with
	// create-only semantics: a folder of that name that already exists is
	// refused with ErrFolderExists and left untouched. "" means
	// FolderName(""). The folder holds only what this Copy (and later
	// steps that journal their files) put there; undoing the journal
	// removes its files, then the folder.
	Folder string
	// SystemRoot is the local path that Share maps to on the target, used
	// for CopyResult.LocalPath; "" means C:\Windows (ADMIN$ is
	// %SystemRoot%).
	SystemRoot string
	// Verify selects the proof; see VerifyMode.
	Verify VerifyMode
	// Parallel is the number of WRITE requests in flight; 0 means 4.
	Parallel int
	// WriteLimit, when set, is shared with other Copies (the sessions of
	// one console) and bounds their WRITE requests in flight together;
	// see WriteLimit. Nil leaves each Copy its Parallel.
	WriteLimit *WriteLimit
	// ChunkSize is the size of one WRITE; 0 means 1 MiB (go-smb2's limit).
	ChunkSize int
	// Progress, when set, is called with the bytes acknowledged so far and
	// the total. Calls are serialised and never go backwards; they come
	// from Copy's goroutines, so keep the callback short.
	Progress func(done, total int64)
	// Journal, when set, records every directory and file Copy creates,
	// the temporary file included until it is renamed or removed. Each
	// is recorded (and persisted) before the call that creates it.
	Journal *Journal
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// CopyResult says where the applet is on the target and how it got there.
type CopyResult struct {
	// Share and Path locate the file on the share (Path uses backslashes).
	Share, Path string
	// Folder is the applet's folder on the share (Path's directory).
	Folder string
	// SharePath is \\host\ADMIN$\lanconnect-...\name; LocalPath is
	// C:\Windows\lanconnect-...\name as a launcher on the target needs it.
	SharePath, LocalPath string
	// Size and SHA256 describe the content.
	Size   int64
	SHA256 string
	// Skipped is always false: the folder is new, so nothing can be in
	// place already. It is kept for compatibility.
	Skipped bool
	// Verified is the proof that was applied.
	Verified VerifyMode
	// Took is the duration of the whole copy.
	Took time.Duration
}

// CopyError is a failed Copy. Op names the step; Leftover names a
// temporary file that could not be removed (it stays journaled when a
// Journal was given). It wraps the cause, which may be a context error,
// ErrHashMismatch, ErrSizeMismatch, os.ErrPermission or an SMB error.
type CopyError struct {
	Addr, Op string
	Leftover string
	Err      error
	// Diagnosis explains the failure to a technician when Copy knows more
	// than the cause says (a folder that already exists, a folder that is
	// not admin-only); it is zero otherwise.
	Diagnosis diag.Diagnosis
}

func (e *CopyError) Error() string {
	s := fmt.Sprintf("deploy: copy to %s: %s: %v", e.Addr, e.Op, e.Err)
	if e.Leftover != "" {
		s += " (temporary file left: " + e.Leftover + ")"
	}
	return s
}

// Unwrap returns the cause.
func (e *CopyError) Unwrap() error { return e.Err }

// Diagnose returns the diagnosis (diag.Diagnoser); it is zero when Copy
// knows no more than the cause says.
func (e *CopyError) Diagnose() diag.Diagnosis { return e.Diagnosis }

func cleanDir(d string) (string, error) {
	d = strings.Trim(strings.ReplaceAll(d, "/", `\`), `\`)
	var parts []string
	for _, p := range strings.Split(d, `\`) {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: directory %q climbs out of the share", ErrBadOptions, d)
		}
		if strings.ContainsAny(p, `:*?"<>|`) {
			return "", fmt.Errorf("%w: directory %q has a character Windows does not allow", ErrBadOptions, d)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, `\`), nil
}

// Copy puts applet on the target of g: it creates the applet's folder
// (opts.Dir\opts.Folder under ADMIN$) create-only, writes the content to
// a temporary name there, verifies it (see VerifyMode), and renames it
// into place. A folder that already exists is refused (ErrFolderExists),
// and a folder that is not admin-only (ErrUnsafeFolder) is refused before
// anything is sent. Every directory and file is journaled before it is
// created; when a create call fails without a definite answer (canceled,
// connection lost), Copy removes the object by name. A copy that fails or
// is canceled never leaves a partial file under the final name: the
// temporary file is removed, or stays journaled and is named in the
// *CopyError.
//
// Copy does not start anything and does not remove the applet or its
// folder afterwards; undo the journal for that.
func Copy(ctx context.Context, g *adauth.Grant, applet Applet, opts CopyOptions) (*CopyResult, error) {
	start := time.Now()
	if g == nil || grantsess.Of(g) == nil {
		return nil, ErrNoGrant
	}
	host := g.Addr
	fail := func(op string, err error) (*CopyResult, error) {
		return nil, &CopyError{Addr: host, Op: op, Err: smbconn.MapError(err)}
	}
	if err := applet.Validate(); err != nil {
		return fail("validate", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	share, parent, err := CheckFolder(opts.Share, orDefault(opts.Dir, DefaultDir))
	if err != nil {
		ce := &CopyError{Addr: host, Op: "validate", Err: err}
		if errors.Is(err, ErrUnsafeFolder) {
			ce.Diagnosis = diagUnsafeFolder
		}
		return nil, ce
	}
	folder := opts.Folder
	if folder == "" {
		folder = FolderName("")
	}
	if err := checkFolderName(folder); err != nil {
		return fail("validate", err)
	}
	dir := joinPath(parent, folder)
	verify := opts.Verify
	if !g.Facts.Signed && !g.Facts.Encrypted {
		verify = VerifyReadBack
	}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	chunk := opts.ChunkSize
	if chunk <= 0 || chunk > DefaultChunkSize {
		chunk = DefaultChunkSize
	}
	if mw := int(grantsess.Of(g).Info().MaxWriteSize); mw > 0 && chunk > mw {
		chunk = mw
	}

	src, closeSrc, err := applet.open()
	if err != nil {
		return fail("open applet", err)
	}
	defer closeSrc()
	size := src.size

	sh, umount, err := mount(ctx, g, share)
	if err != nil {
		return fail("tree connect "+share, err)
	}
	// The folder's creates that were interrupted are removed by name after
	// the tree is disconnected (see createDir).
	var ins []*interrupted
	defer func() {
		umount()
		if err := removeInterrupted(ctx, g, share, ins, opts.Journal); err != nil {
			log.Warn("interrupted folder create left on target", "host", host, "err", err)
		}
	}()
	fs := sh.WithContext(ctx)

	mk := func(p, note string, exclusive bool) error {
		in, err := createDir(ctx, fs, host, share, p, note, exclusive, opts.Journal)
		if in != nil {
			ins = append(ins, in)
		}
		return err
	}
	if parent != "" {
		parts := strings.Split(parent, `\`)
		for i := range parts {
			if err := mk(strings.Join(parts[:i+1], `\`), "directory", false); err != nil {
				return fail("create directory", err)
			}
		}
	}
	if err := mk(dir, "applet folder", true); err != nil {
		ce := &CopyError{Addr: host, Op: "create folder", Err: smbconn.MapError(err)}
		if errors.Is(err, ErrFolderExists) {
			ce.Diagnosis = diagFolderExists(share, dir)
		}
		return nil, ce
	}
	final := joinPath(dir, applet.Name)
	res := &CopyResult{
		Share: share, Path: final, Folder: dir, Size: size, Verified: verify,
		SharePath: `\\` + host + `\` + share + `\` + final,
		LocalPath: strings.TrimRight(orDefault(opts.SystemRoot, DefaultSystemRoot), `\`) + `\` + final,
	}
	progress := newProgress(opts.Progress, size)

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := joinPath(dir, "."+applet.Name+"."+hex.EncodeToString(rnd[:])+".lcpart")
	var tmpRec Artifact
	if opts.Journal != nil {
		if tmpRec, err = opts.Journal.Record(ctx, Artifact{Kind: KindFile, Addr: host, Share: share, Path: tmp, Note: "temporary copy of " + applet.Name}); err != nil {
			return fail("journal", err)
		}
	}
	// From here on, a failure removes the temporary file (or leaves it
	// journaled and says so).
	cleanup := func(op string, cause error) (*CopyResult, error) {
		ce := &CopyError{Addr: host, Op: op, Err: smbconn.MapError(cause)}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := sh.WithContext(cctx).Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
			ce.Leftover = share + `\` + tmp
			log.Warn("temporary file left on target", "host", host, "path", ce.Leftover, "err", err)
			return nil, ce
		}
		if opts.Journal != nil {
			_ = opts.Journal.Resolve(cctx, tmpRec.ID)
		}
		return nil, ce
	}

	sum, err := writeFile(ctx, sh, tmp, src, chunk, parallel, opts.WriteLimit, progress)
	if err != nil {
		return cleanup("write", err)
	}
	res.SHA256 = sum
	if applet.SHA256 != "" && !strings.EqualFold(applet.SHA256, sum) {
		return cleanup("verify", fmt.Errorf("%w: applet content hashes to %s, expected %s", ErrHashMismatch, sum, strings.ToLower(applet.SHA256)))
	}
	st, err := fs.Stat(tmp)
	if err != nil {
		return cleanup("verify", err)
	}
	if st.Size() != size {
		return cleanup("verify", fmt.Errorf("%w: %d bytes on the target, %d sent", ErrSizeMismatch, st.Size(), size))
	}
	if verify == VerifyReadBack {
		got, err := hashRemote(fs, tmp, size)
		if err != nil {
			return cleanup("read back", err)
		}
		if got != sum {
			return cleanup("read back", fmt.Errorf("%w: target file hashes to %s, sent %s", ErrHashMismatch, got, sum))
		}
	}

	// Rename into place. Journal the final name first, so that a crash
	// between the two steps leaves both names journaled. The folder is
	// new, so nothing is in the way.
	if opts.Journal != nil {
		if _, err := opts.Journal.Record(ctx, Artifact{Kind: KindFile, Addr: host, Share: share, Path: final, Note: "applet " + applet.Name + " " + applet.Version}); err != nil {
			return cleanup("journal", err)
		}
	}
	if err := fs.Rename(tmp, final); err != nil {
		return cleanup("rename", err)
	}
	if opts.Journal != nil {
		_ = opts.Journal.Resolve(ctx, tmpRec.ID)
	}
	res.Took = time.Since(start)
	log.Debug("applet copied", "host", host, "path", final, "bytes", size, "took", res.Took, "verify", verify)
	return res, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + `\` + name
}

// progress serialises Progress callbacks.
type progress struct {
	mu    sync.Mutex
	fn    func(done, total int64)
	done  int64
	total int64
}

func newProgress(fn func(done, total int64), total int64) *progress {
	return &progress{fn: fn, total: total}
}

func (p *progress) add(n int64) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.fn(p.done, p.total)
}

// writeFile creates name exclusively and writes src to it with up to
// parallel WRITE requests in flight, hashing the content in order as it
// is read (shared content is not hashed again: its SHA-256 is known). It
// returns the SHA-256 in hexadecimal.
//
// go-smb2 binds a File to one context for all its requests, the CLOSE
// included. So the file gets a context of its own: when ctx ends, no new
// WRITE starts, the ones in flight get 2 s to finish, and the handle is
// then closed normally, which lets the caller delete the temporary file.
func writeFile(ctx context.Context, sh *smb2.Share, name string, src source, chunk, parallel int, lim *WriteLimit, prog *progress) (string, error) {
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	fctx, fcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer fcancel()
	var grace *time.Timer
	var graceMu sync.Mutex
	stop := context.AfterFunc(ctx, func() {
		graceMu.Lock()
		grace = time.AfterFunc(2*time.Second, fcancel)
		graceMu.Unlock()
	})
	defer func() {
		stop()
		graceMu.Lock()
		if grace != nil {
			grace.Stop()
		}
		graceMu.Unlock()
	}()
	f, err := sh.WithContext(fctx).OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	sum, werr := pipeline(pctx, pcancel, f, src, chunk, parallel, lim, prog)
	closeErr := f.Close()
	if werr != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", werr
	}
	if closeErr != nil {
		return "", closeErr
	}
	return sum, nil
}

type chunkJob struct {
	off int64
	buf []byte
}

// writerAt is where pipeline writes: an *smb2.File, or a test's fake.
type writerAt interface {
	WriteAt(b []byte, off int64) (int, error)
}

// writeAtSafely is f.WriteAt in a goroutine of ours: a panic of go-smb2
// on a hostile WRITE answer fails the copy, not the process.
func writeAtSafely(f writerAt, b []byte, off int64) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("deploy: SMB write panicked: %v", r)
		}
	}()
	return f.WriteAt(b, off)
}

// pipeline sends src to f in chunks, with parallel writes in flight, and
// returns its SHA-256. Shared content (src.mem) is sent as slices of
// itself, with no buffer and no hashing (src.sum is its hash); other
// content is read into parallel+1 buffers of chunk bytes, recycled, and
// hashed in order as it is read. Each WRITE waits for its turn under lim.
func pipeline(ctx context.Context, cancel context.CancelFunc, f writerAt, src source, chunk, parallel int, lim *WriteLimit, prog *progress) (string, error) {
	size := src.size
	var free chan []byte
	var h hash.Hash
	if src.mem == nil {
		free = make(chan []byte, parallel+1)
		for range parallel + 1 {
			free <- make([]byte, chunk)
		}
		h = sha256.New()
	}
	jobs := make(chan chunkJob)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	setErr := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range parallel {
		wg.Go(func() {
			for j := range jobs {
				if err := lim.acquire(ctx); err != nil {
					setErr(err)
					if free != nil {
						free <- j.buf[:cap(j.buf)]
					}
					continue
				}
				n, err := writeAtSafely(f, j.buf, j.off)
				lim.release()
				if err != nil {
					setErr(err)
				} else if n != len(j.buf) {
					setErr(fmt.Errorf("%w: short write %d of %d at %d", io.ErrShortWrite, n, len(j.buf), j.off))
				} else {
					prog.add(int64(n))
				}
				if free != nil {
					free <- j.buf[:cap(j.buf)]
				}
			}
		})
	}
	var rerr error
produce:
	for off := int64(0); off < size; {
		var buf []byte
		if src.mem != nil {
			if ctx.Err() != nil {
				break produce
			}
			buf = src.mem[off:min(off+int64(chunk), size):min(off+int64(chunk), size)]
		} else {
			select {
			case buf = <-free:
			case <-ctx.Done():
				break produce
			}
		}
		n := int(min(int64(len(buf)), size-off))
		if src.mem == nil {
			m, err := src.r.ReadAt(buf[:n], off)
			if m < n {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				rerr = fmt.Errorf("%w: reading applet at %d: %v", ErrBadApplet, off, err)
				cancel()
				break
			}
			h.Write(buf[:n])
		}
		select {
		case jobs <- chunkJob{off, buf[:n]}:
		case <-ctx.Done():
			break produce
		}
		off += int64(n)
	}
	close(jobs)
	wg.Wait()
	if rerr != nil {
		return "", rerr
	}
	if firstErr != nil {
		return "", firstErr
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if h == nil {
		return src.sum, nil
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashRemote reads name back and hashes it, checking its length. It keeps
// up to readAhead READ requests in flight and hashes the chunks in order.
func hashRemote(fs *smb2.Share, name string, size int64) (string, error) {
	const readAhead = 4
	f, err := fs.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return "", err
	} else if st.Size() != size {
		return "", fmt.Errorf("%w: %d bytes on the target, expected %d", ErrSizeMismatch, st.Size(), size)
	}
	type result struct {
		b   []byte
		err error
	}
	// Each chunk gets a channel; the channels are queued in offset order,
	// so hashing consumes them in order while reads run ahead.
	queue := make(chan chan result, readAhead)
	go func() {
		defer close(queue)
		for off := int64(0); off < size; off += DefaultChunkSize {
			ch := make(chan result, 1)
			queue <- ch
			go func(off int64) {
				defer func() {
					// go-smb2 may panic on a hostile READ answer that its
					// checks let through; fail the copy, not the process.
					if r := recover(); r != nil {
						ch <- result{nil, fmt.Errorf("deploy: SMB read panicked: %v", r)}
					}
				}()
				b := make([]byte, min(DefaultChunkSize, size-off))
				n, err := f.ReadAt(b, off)
				if err == nil && n != len(b) {
					err = fmt.Errorf("%w: short read at %d", ErrSizeMismatch, off)
				}
				ch <- result{b, err}
			}(off)
		}
	}()
	h := sha256.New()
	var firstErr error
	for ch := range queue {
		r := <-ch
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		if firstErr == nil {
			h.Write(r.b)
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
