package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// winemuImagePaths asks winemu for the binary paths of every service it
// created, as any local user of the target reads them in System event
// 7045 (and, while the service exists, with sc qc or in the registry).
func winemuImagePaths(t *testing.T, ctl string) []string {
	t.Helper()
	var paths []string
	if err := json.Unmarshal([]byte(winemuControl(t, ctl, "imagepaths")), &paths); err != nil {
		t.Fatalf("winemu imagepaths: %v", err)
	}
	return paths
}

// The acceptance contract of the check-in ticket, end to end with the
// standard wiring (its applet file and folder names, its ticket file): the
// service's ImagePath as winemu received it has no run of 32 or more
// characters that could be a token, fingerprint or key, and names the
// ticket file instead. -keep and -cleanup also show that the journal
// removes everything, the ticket file included.
func TestLabTicketNotInImagePath(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tgt := lab.Targets[0]
	ctl := startWinemu(ctx, t, tgt, tgt.Admin.Password).ctl
	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	jdir := t.TempDir()
	r := runConnect(ctx, t, tgt.Admin.Password, "-console", net.JoinHostPort(lab.HostAddr.String(), "0"), "-applet", applet,
		"-checkin-timeout", "30s", "-user", tgt.Admin.User, "-method", "scm", "-keep", "-journal", jdir, tgt.Addr.String())
	if last := r.last(tgt.Addr.String()); r.code != 0 || last.State != "Running" {
		t.Fatalf("exit %d, events %s\n%s", r.code, brief(r.of(tgt.Addr.String())), r.stderr)
	}
	paths := winemuImagePaths(t, ctl)
	if len(paths) != 1 {
		t.Fatalf("image paths %q", paths)
	}
	if m := regexp.MustCompile(`[A-Za-z0-9+/=_-]{32,}`).FindString(paths[0]); m != "" {
		t.Fatalf("ImagePath %q has a run of %d token characters: %q", paths[0], len(m), m)
	}
	if !strings.Contains(paths[0], " -ticket-file ") || strings.Contains(paths[0], "-token") {
		t.Fatalf("ImagePath %q", paths[0])
	}
	t.Logf("ImagePath: %s", paths[0])

	files, _ := filepath.Glob(filepath.Join(jdir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("journal files: %v", files)
	}
	cmd := exec.CommandContext(ctx, buildBin(t, "connect", ""), "-cleanup", "-user", tgt.Admin.User, files[0])
	cmd.Env = append(os.Environ(), "LANCONNECT_PASSWORD="+tgt.Admin.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("connect -cleanup: %v\n%s", err, out)
	}
	if l := leftovers(t, tgt); len(l) != 0 {
		t.Fatalf("left on the target: %v", l)
	}
	if s := winemuServices(t, ctl); len(s) != 0 {
		t.Fatalf("services left: %v", s)
	}
}
