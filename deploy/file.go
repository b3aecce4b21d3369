package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/grantsess"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// PutFile writes a small file on g's target: content becomes the file
// path (backslashes or slashes) on share ("" means ADMIN$), in a directory
// that must already exist (the applet's folder, which Copy made). A file
// of that name is replaced. The file is recorded in j (when not nil)
// before it is created, so that undoing the journal removes it even after
// a crash. The content is written in one piece and its size checked; it
// is never logged, so PutFile suits secrets such as the check-in ticket,
// in a folder that only administrators can read.
//
// PutFile creates no directory and does not verify the content by
// reading it back; use Copy for the applet itself. Errors are *CopyError
// values.
func PutFile(ctx context.Context, g *adauth.Grant, share, path string, content []byte, j *Journal) error {
	if g == nil || grantsess.Of(g) == nil {
		return ErrNoGrant
	}
	fail := func(op string, err error) error {
		return &CopyError{Addr: g.Addr, Op: op, Err: smbconn.MapError(err)}
	}
	if share == "" {
		share = DefaultShare
	}
	p, err := cleanDir(path)
	if err != nil || p == "" {
		if err == nil {
			err = fmt.Errorf("%w: empty file path", ErrBadOptions)
		}
		return fail("validate", err)
	}
	sh, umount, err := mount(ctx, g, share)
	if err != nil {
		return fail("tree connect "+share, err)
	}
	defer umount()
	fs := sh.WithContext(ctx)
	if i := strings.LastIndexByte(p, '\\'); i > 0 {
		if st, err := fs.Stat(p[:i]); err != nil || !st.IsDir() {
			if err == nil {
				err = fmt.Errorf("%w: %s\\%s is not a directory", ErrBadOptions, share, p[:i])
			}
			return fail("stat directory", err)
		}
	}
	if j != nil {
		if _, err := j.Record(ctx, Artifact{Kind: KindFile, Addr: g.Addr, Share: share, Path: p, Note: "file"}); err != nil {
			return fail("journal", err)
		}
	}
	if err := fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail("replace", err)
	}
	f, err := fs.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail("create", err)
	}
	_, werr := f.Write(content)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		if st, err := fs.Stat(p); err != nil {
			werr = err
		} else if st.Size() != int64(len(content)) {
			werr = fmt.Errorf("%w: %d bytes on the target, %d sent", ErrSizeMismatch, st.Size(), len(content))
		}
	}
	if werr != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = sh.WithContext(cctx).Remove(p) // still journaled if this fails
		return fail("write", werr)
	}
	return nil
}
