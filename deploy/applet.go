package deploy

import (
	"bytes"
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
// reports it. An Applet is a description: it holds no open file.
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

// AppletFromFile describes the local file at path, hashing it.
func AppletFromFile(name, version, path string) (Applet, error) {
	f, err := os.Open(path)
	if err != nil {
		return Applet{}, fmt.Errorf("%w: %v", ErrBadApplet, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Applet{}, fmt.Errorf("%w: reading %s: %v", ErrBadApplet, path, err)
	}
	return Applet{Name: name, Version: version, Path: path, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// AppletFromBytes describes content held in memory, hashing it.
func AppletFromBytes(name, version string, content []byte) Applet {
	sum := sha256.Sum256(content)
	return Applet{Name: name, Version: version, Content: bytes.NewReader(content), Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
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

// open returns the content as a ReaderAt with its size, and a closer.
func (a Applet) open() (io.ReaderAt, int64, func() error, error) {
	if a.Content != nil {
		return a.Content, a.Size, func() error { return nil }, nil
	}
	f, err := os.Open(a.Path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%w: %v", ErrBadApplet, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("%w: %v", ErrBadApplet, err)
	}
	if a.Size > 0 && st.Size() != a.Size {
		f.Close()
		return nil, 0, nil, fmt.Errorf("%w: %s is %d bytes, applet says %d", ErrSizeMismatch, a.Path, st.Size(), a.Size)
	}
	return f, st.Size(), f.Close, nil
}
