package standard

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"strings"

	"github.com/lanconnect/lanconnect/deploy"
)

// Deployer is the deploy.FileDeployer over deploy.Copy. It copies Applet into
// a new folder of the session's own under ADMIN$ (deploy.FolderName of the
// session ID: "lanconnect-<session ID>.<random>"), created create-only, so
// that sessions to one host never share a folder and a folder prepared in
// advance is refused; the file name carries the session ID too. It records
// what it creates in the session's journal (deploy.Target.Journal), as
// deploy's own kinds (files and directories, undone by
// deploy.FileUndoers). It does not launch anything.
type Deployer struct {
	// Applet is what is copied; its Name is the pattern of the file name
	// (see AppletFileName). Deploy copies the Applet value, not its
	// content: every session sends from the same read-only bytes when it
	// was made with deploy.AppletFromFile or deploy.AppletFromBytes.
	Applet deploy.Applet
	// Applets, when set, are variants per architecture and replace
	// Applet: Deploy copies Applets.Choose(t.Arch) (see
	// deploy.VariantDeployer). Each variant's Name is a file-name pattern
	// as Applet's is.
	Applets deploy.Applets
	// Copy tunes deploy.Copy; its Folder, Journal, Progress and Logger are
	// set per call. Its Dir, when set, is the parent of the session's
	// folder and must be admin-only (deploy.CheckFolder).
	Copy deploy.CopyOptions
	// Logger receives deploy.Copy's debug messages; nil discards them.
	Logger *slog.Logger
}

// Deploy implements deploy.Deployer: it copies the applet to t's target
// through t.Grant (deploy.Copy: temporary name, verification, rename),
// reports progress, records the files and directories it creates in the
// session's journal, and returns the applet's local path there. It does not
// undo anything itself: what a failed copy left is in the journal, which the
// session undoes.
func (d Deployer) Deploy(ctx context.Context, t *deploy.Target, progress func(done, total int64)) (string, error) {
	a, err := d.Variants().Choose(t.Arch)
	if err != nil {
		return "", err
	}
	a.Name = AppletFileName(a.Name, t.Session)
	o := d.Copy
	o.Folder = deploy.FolderName(t.Session)
	o.Journal, o.Progress, o.Logger = t.Journal, progress, d.Logger
	r, err := deploy.Copy(ctx, t.Grant, a, o)
	if err != nil {
		return "", err
	}
	return r.LocalPath, nil
}

// DeployFile implements deploy.FileDeployer: it writes content as name
// into the directory of t.AppletPath (the applet's own folder, whatever
// the copy options made it) through t.Grant with deploy.PutFile, which
// journals the file before creating it so that cleanup removes it, and
// returns its local path. The folder must lie under the share's
// SystemRoot. It does not log the content, which is secret (the check-in
// ticket), and creates no directory.
func (d Deployer) DeployFile(ctx context.Context, t *deploy.Target, name string, content []byte) (string, error) {
	root := strings.TrimRight(d.Copy.SystemRoot, `\`)
	if root == "" {
		root = deploy.DefaultSystemRoot
	}
	dir := t.AppletPath
	if i := strings.LastIndexByte(dir, '\\'); i >= 0 {
		dir = dir[:i]
	}
	if name == "" || strings.ContainsAny(name, `\/`) {
		return "", fmt.Errorf("%w: %q is not a plain file name", deploy.ErrBadOptions, name)
	}
	if !strings.EqualFold(dir, root) && !strings.HasPrefix(strings.ToLower(dir), strings.ToLower(root)+`\`) {
		return "", fmt.Errorf("%w: the applet's folder %q is not under %s", deploy.ErrBadOptions, dir, root)
	}
	rel := strings.TrimPrefix(dir[len(root):]+`\`+name, `\`)
	if err := deploy.PutFile(ctx, t.Grant, d.Copy.Share, rel, content, t.Journal); err != nil {
		return "", err
	}
	return dir + `\` + name, nil
}

// Variants implements deploy.VariantDeployer: Applets, or Applet alone
// (a default, chosen whatever the target's architecture).
func (d Deployer) Variants() deploy.Applets {
	if len(d.Applets) > 0 {
		return d.Applets
	}
	a := d.Applet
	a.Arch = ""
	return deploy.Applets{a}
}

var (
	_ deploy.FileDeployer    = Deployer{}
	_ deploy.VariantDeployer = Deployer{}
)

// AppletFileName returns the per-session file name of an applet named name:
// the session ID goes before the extension ("lcapplet.exe", "s1" gives
// "lcapplet-s1.exe").
func AppletFileName(name, sessionID string) string {
	ext := path.Ext(name)
	if ext == name { // ".exe": no stem
		ext = ""
	}
	return strings.TrimSuffix(name, ext) + "-" + sessionID + ext
}
