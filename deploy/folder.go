package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	smb2 "github.com/oiweiwei/go-smb2.fork"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/grantsess"
)

// DefaultFolderPrefix starts the name of every applet folder that Copy
// creates, so that a person (and a journal's scope check) recognises it.
const DefaultFolderPrefix = "lanconnect-"

// Errors about the applet's folder. Both also match ErrBadOptions or the
// failing step's *CopyError; match them with errors.Is.
var (
	// ErrFolderExists means the applet's folder was already there when
	// Copy went to create it. Folder names are unique per session, so a
	// collision is a sign that someone prepared the folder in advance to
	// swap the applet or plant a DLL beside it: Copy refuses it and
	// leaves it untouched.
	ErrFolderExists = errors.New("deploy: the applet's folder already exists")
	// ErrUnsafeFolder means the requested folder is not one that only
	// SYSTEM and Administrators can write: it is not under ADMIN$, or it
	// is under Temp (or another folder of C:\Windows that ordinary users
	// may write in).
	ErrUnsafeFolder = errors.New("deploy: the applet's folder is not admin-only")
)

// usersWritable lists the folders under C:\Windows (lower case, share
// relative) in which BUILTIN\Users may create files or folders on a
// default Windows installation. A folder made inside one of them inherits
// that right, so the applet must never go there. The list is not
// exhaustive: a vendor's folder should be one its own installer made.
var usersWritable = []string{
	`temp`,
	`tasks`,
	`tracing`,
	`debug`,
	`registration\crmlog`,
	`servicing\packages`,
	`system32\tasks`,
	`system32\tasks_migrated`,
	`system32\spool`,
	`system32\com\dmp`,
	`system32\fxstmp`,
	`system32\microsoft\crypto\rsa\machinekeys`,
	`syswow64\tasks`,
	`syswow64\com\dmp`,
	`syswow64\fxstmp`,
}

var diagUnsafeFolder = diag.Diagnosis{Code: diag.AppletFolderUnsafe,
	Summary: "The configured applet folder is not admin-only: ordinary users of the target could replace the applet before it starts as LocalSystem.",
	Fix:     `Leave the folder option empty (a new folder directly under ADMIN$), or name a folder under ADMIN$ that is not Temp.`}

func diagFolderExists(share, p string) diag.Diagnosis {
	return diag.Diagnosis{Code: diag.AppletFolderExists,
		Summary: `The applet's folder ` + share + `\` + p + ` already existed on the target. Its name is new for every session, so someone created it in advance, which is how an applet is swapped or a DLL is planted; nothing was copied and the folder was left as it is.`,
		Fix:     "Ask the target's administrator to check who created the folder and remove it, then connect again."}
}

// FolderName returns a new applet folder name: DefaultFolderPrefix, tag
// (for example a session ID) and a dot when tag is not empty, then 8
// random hexadecimal digits.
// The random part keeps the name unique even when tags repeat. Characters
// of tag other than letters, digits, '-' and '_' are dropped, and it is cut
// to 20 characters, so that no part of the name between dots is 32
// characters or longer: the folder appears on the applet's command line,
// which must hold no run that could pass for a token. It creates nothing.
func FolderName(tag string) string {
	var b strings.Builder
	b.WriteString(DefaultFolderPrefix)
	n := 0
	for _, r := range tag {
		if n == maxFolderTag {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
			n++
		}
	}
	if n > 0 {
		b.WriteByte('.')
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read does not fail (Go 1.24+)
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

// maxFolderTag bounds the tag in FolderName: with DefaultFolderPrefix it
// keeps the run before the dot under 32 characters.
const maxFolderTag = 20

// CheckFolder validates where Copy would put the applet: share must be
// ADMIN$ ("" means ADMIN$), and dir (the folder's parent under the share,
// "" for the share's root) must not be Temp or another folder that
// ordinary users may write in, nor lie under one. It returns the cleaned
// share and dir (backslashes, no leading or trailing separator), or an
// error matching ErrBadOptions, and ErrUnsafeFolder when the place is not
// admin-only. It touches nothing.
func CheckFolder(share, dir string) (string, string, error) {
	if share == "" {
		share = DefaultShare
	}
	if !strings.EqualFold(share, DefaultShare) {
		return "", "", fmt.Errorf("%w: %w: share %q: the applet must go under ADMIN$ (C:\\Windows), which only administrators can write",
			ErrBadOptions, ErrUnsafeFolder, share)
	}
	d, err := cleanDir(dir)
	if err != nil {
		return "", "", err
	}
	low := strings.ToLower(d)
	for _, w := range usersWritable {
		if low == w || strings.HasPrefix(low, w+`\`) {
			return "", "", fmt.Errorf("%w: %w: ADMIN$\\%s: ordinary users may create files in ADMIN$\\%s, so a folder there is not admin-only",
				ErrBadOptions, ErrUnsafeFolder, d, w)
		}
	}
	return DefaultShare, d, nil
}

// checkFolderName validates one folder name component.
func checkFolderName(name string) error {
	c, err := cleanDir(name)
	if err != nil {
		return err
	}
	if c == "" || c != name || strings.Contains(c, `\`) {
		return fmt.Errorf("%w: folder name %q must be one path component", ErrBadOptions, name)
	}
	return nil
}

// interrupted is a directory whose create call failed without a definite
// answer (canceled, connection lost): it may exist on the target now.
// Its journal entry stays until it has been removed by name.
type interrupted struct {
	path string
	rec  Artifact
	ok   bool // rec is a journal entry
}

// createDir creates share\p, journaling the intent before the call. With
// exclusive, an existing directory is ErrFolderExists (and left alone);
// without, an existing directory is used as it is (a parent that someone
// else made). On a failed call that may still have created the directory
// it returns the interruption, for removal by name once the share's tree
// is disconnected (that closes a handle the abandoned call may have
// left open, which would block the removal).
func createDir(ctx context.Context, fs *smb2.Share, host, share, p, note string, exclusive bool, j *Journal) (*interrupted, error) {
	if !exclusive {
		st, err := fs.Stat(p)
		if err == nil {
			if !st.IsDir() {
				return nil, fmt.Errorf("%w: %s\\%s is a file", ErrBadOptions, share, p)
			}
			return nil, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	in := &interrupted{path: p}
	if j != nil {
		rec, err := j.Record(ctx, Artifact{Kind: KindDir, Addr: host, Share: share, Path: p, Note: note})
		if err != nil {
			_ = j.Resolve(ctx, rec.ID) // nothing was created; do not leave the intent in memory
			return nil, err
		}
		in.rec, in.ok = rec, true
	}
	err := fs.Mkdir(p, 0o755)
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, os.ErrExist):
		// Not ours: never remove it.
		if in.ok {
			_ = j.Resolve(context.WithoutCancel(ctx), in.rec.ID)
		}
		if !exclusive {
			return nil, nil // created concurrently by another session
		}
		return nil, fmt.Errorf("%w: %s\\%s (folder names are unique per session, so someone made it in advance; it was left untouched)",
			ErrFolderExists, share, p)
	case definiteRefusal(err):
		if in.ok {
			_ = j.Resolve(context.WithoutCancel(ctx), in.rec.ID)
		}
		return nil, err
	}
	return in, err
}

// definiteRefusal reports whether a create call's error is the server's
// answer that nothing was created (access denied, a bad name), rather
// than an interruption.
func definiteRefusal(err error) bool {
	var re *smb2.ResponseError
	return errors.As(err, &re) || errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist)
}

// removeInterrupted removes the directories of interrupted creates by
// name, newest first, over a fresh tree connect of g's session, and
// resolves their journal entries once they are gone. Those it cannot
// remove stay journaled and are returned as an error.
func removeInterrupted(ctx context.Context, g *adauth.Grant, share string, ins []*interrupted, j *Journal) error {
	if len(ins) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	sh, umount, err := mount(cctx, g, share)
	if err != nil {
		return err
	}
	defer umount()
	fs := sh.WithContext(cctx)
	var errs []error
	for i := len(ins) - 1; i >= 0; i-- {
		in := ins[i]
		if err := fs.Remove(in.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s\\%s: %w", share, in.path, err))
			continue
		}
		if in.ok && j != nil {
			_ = j.Resolve(cctx, in.rec.ID)
		}
	}
	return errors.Join(errs...)
}

// mount connects to share on g's session; umount disconnects the tree,
// also after ctx ended, within two seconds.
func mount(ctx context.Context, g *adauth.Grant, share string) (sh *smb2.Share, umount func(), err error) {
	sh, err = grantsess.Of(g).Mount(ctx, share)
	if err != nil {
		return nil, nil, err
	}
	return sh, func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = sh.WithContext(uctx).Umount()
	}, nil
}
