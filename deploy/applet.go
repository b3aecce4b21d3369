package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Errors of package deploy. Match them with errors.Is.
var (
	// ErrBadApplet means an Applet is incomplete or inconsistent: no name,
	// a name with a path separator, no content, or a malformed SHA256.
	ErrBadApplet = errors.New("deploy: invalid applet")
	// ErrHashMismatch means content did not hash to the expected SHA-256:
	// the local applet differs from its declared hash, or the copy on the
	// target differs from what was sent.
	ErrHashMismatch = errors.New("deploy: SHA-256 mismatch")
	// ErrSizeMismatch means the file on the target has the wrong size.
	ErrSizeMismatch = errors.New("deploy: size mismatch")
	// ErrBadOptions means CopyOptions are invalid (for example a directory
	// that climbs out of ADMIN$).
	ErrBadOptions = errors.New("deploy: invalid options")
	// ErrNoGrant means a nil or closed grant was passed.
	ErrNoGrant = errors.New("deploy: no grant")
)

// Applet is the vendor's program to put on a target: a name, a version,
// its content and its SHA-256. Content comes from Content (an io.ReaderAt
// of Size bytes) or, when Content is nil, from the local file Path.
//
// SHA256 is the expected hash in hexadecimal. When set, Copy refuses to
// install content that does not match it; when empty, Copy computes it and
// reports it. An Applet holds no open file.
//
// The Content of an Applet made with AppletFromFile or AppletFromBytes is
// one read-only copy of the bytes in memory, shared by every copy of the
// Applet value and so by every session that deploys it: Copy sends slices
// of it, with no buffer of its own, and uses the SHA-256 computed when it
// was made. Any other Content (or Path) is read into buffers of each
// Copy's own (CopyOptions.Parallel+1 chunks) and hashed as it is sent.
type Applet struct {
	// Name is the file name on the target, for example "acme-applet.exe".
	Name string
	// Version is informational (journal and logs).
	Version string
	// Content and Size give the bytes; Path is used when Content is nil.
	Content io.ReaderAt
	Size    int64
	Path    string
	// SHA256 is the expected SHA-256 in hexadecimal (64 digits), or empty.
	SHA256 string
	// Arch is the Windows architecture this build runs on natively:
	// Arch386, ArchAMD64 or ArchARM64; empty for a default applet. It
	// matters only in a set of variants (Applets), where the target's
	// architecture picks one; a single Applet is copied whatever it says.
	Arch string
}

// AppletFromFile reads the local file at path once into memory and
// describes it, hashing it: its Content is one read-only copy shared by
// every session that deploys it (see Applet), and Path names the file for
// information. A change to the file afterwards does not change the Applet
// (what was hashed is what is sent). The whole file is held in memory for
// as long as the Applet is; for a file too large for that, describe it
// with Path, Size and SHA256 instead, and each Copy reads it.
func AppletFromFile(name, version, path string) (Applet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Applet{}, fmt.Errorf("%w: reading %s: %v", ErrBadApplet, path, err)
	}
	a := AppletFromBytes(name, version, b)
	a.Path = path
	return a, nil
}

// AppletFromBytes describes content held in memory, hashing it. The
// content is not copied: it becomes the Applet's one read-only copy,
// shared by every session that deploys it (see Applet), so it must not be
// modified afterwards.
func AppletFromBytes(name, version string, content []byte) Applet {
	sum := sha256.Sum256(content)
	c := &sharedContent{b: content, sum: hex.EncodeToString(sum[:])}
	return Applet{Name: name, Version: version, Content: c, Size: int64(len(content)), SHA256: c.sum}
}

// sharedContent is an applet's bytes in memory, never written after it is
// made, with their SHA-256. It is safe for concurrent use.
type sharedContent struct {
	b   []byte
	sum string
}

// ReadAt implements io.ReaderAt.
func (c *sharedContent) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("deploy: negative offset")
	}
	if off >= int64(len(c.b)) {
		return 0, io.EOF
	}
	n := copy(p, c.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Validate checks that a is complete: a plain file name, content, and a
// well-formed SHA256 when one is set. Errors match ErrBadApplet.
func (a Applet) Validate() error {
	if a.Name == "" || strings.ContainsAny(a.Name, `\/:*?"<>|`) || a.Name == "." || a.Name == ".." {
		return fmt.Errorf("%w: name %q must be a plain file name", ErrBadApplet, a.Name)
	}
	if a.Content == nil && a.Path == "" {
		return fmt.Errorf("%w: no content and no path", ErrBadApplet)
	}
	if a.Content != nil && a.Size < 0 {
		return fmt.Errorf("%w: negative size", ErrBadApplet)
	}
	if a.SHA256 != "" {
		if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: SHA256 must be 64 hexadecimal digits", ErrBadApplet)
		}
	}
	return nil
}

// source is an applet's content as Copy reads it.
type source struct {
	r    io.ReaderAt
	size int64
	// mem and sum are set for shared content (sharedContent): its bytes,
	// which Copy sends without copying them, and their SHA-256.
	mem []byte
	sum string
}

// open returns the content with its size, and a closer.
func (a Applet) open() (source, func() error, error) {
	nop := func() error { return nil }
	if c, ok := a.Content.(*sharedContent); ok {
		if a.Size != 0 && a.Size != int64(len(c.b)) {
			return source{}, nil, fmt.Errorf("%w: the content is %d bytes, applet says %d", ErrSizeMismatch, len(c.b), a.Size)
		}
		return source{r: c, size: int64(len(c.b)), mem: c.b, sum: c.sum}, nop, nil
	}
	if a.Content != nil {
		return source{r: a.Content, size: a.Size}, nop, nil
	}
	f, err := os.Open(a.Path)
	if err != nil {
		return source{}, nil, fmt.Errorf("%w: %v", ErrBadApplet, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return source{}, nil, fmt.Errorf("%w: %v", ErrBadApplet, err)
	}
	if a.Size > 0 && st.Size() != a.Size {
		f.Close()
		return source{}, nil, fmt.Errorf("%w: %s is %d bytes, applet says %d", ErrSizeMismatch, a.Path, st.Size(), a.Size)
	}
	return source{r: f, size: st.Size()}, f.Close, nil
}
