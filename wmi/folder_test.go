package wmi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/deploy"
)

// The applet's working directory is its own folder (the session folder
// under ADMIN$), not C:\Windows or Temp: a DLL is looked up there first.
func TestLaunchWorkingDirectoryIsTheAppletFolder(t *testing.T) {
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	folder := deploy.FolderName("s1")
	dir := filepath.Join(e.root, folder)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "applet.exe"), []byte("#!/bin/sh\nsleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h, err := (&Launcher{}).launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: `C:\Windows\` + folder + `\applet.exe`})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	defer h.Stop(context.WithoutCancel(ctx))
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", h.PID()))
	if err != nil {
		t.Fatal(err)
	}
	if cwd != dir {
		t.Fatalf("working directory %s, want the applet's folder %s", cwd, dir)
	}
}
