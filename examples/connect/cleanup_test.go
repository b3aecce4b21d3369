package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/remotereg"
)

// A journal file is data from disk: one that names anything connect does
// not make is refused whole, before any logon, and kept.
func TestCleanupRefusesHostileJournal(t *testing.T) {
	ctx := context.Background()
	// Loopback, so that even a broken check sends nothing off the machine.
	const host = "127.0.0.1"
	mine := []deploy.Artifact{
		{Kind: deploy.KindDir, Addr: host, Share: "ADMIN$", Path: `lanconnect-s1-0a1b2c3d`},
		{Kind: deploy.KindFile, Addr: host, Share: "ADMIN$", Path: `lanconnect-s1-0a1b2c3d\lcapplet-s1.exe`},
		remotereg.Change{Kind: remotereg.ChangeService, Addr: host, Name: "lanconnect-0a1b2c3d", Transport: remotereg.TransportPipe}.ToArtifact(),
		remotereg.Change{Kind: remotereg.ChangeRegistryKey, Addr: host, Name: `SOFTWARE\LanConnect\ExampleApplet\s1`}.ToArtifact(),
	}
	for _, hostile := range []deploy.Artifact{
		{Kind: deploy.KindFile, Addr: host, Share: "ADMIN$", Path: `System32\drivers\etc\hosts`},
		{Kind: deploy.KindDir, Addr: host, Share: "C$", Path: `Users`},
		{Kind: deploy.KindFile, Addr: host, Share: "ADMIN$", Path: `lanconnect-s1-0a1b2c3d\..\System32\config\SAM`},
		remotereg.Change{Kind: remotereg.ChangeService, Addr: host, Name: "WinDefend", Transport: remotereg.TransportPipe}.ToArtifact(),
		remotereg.Change{Kind: remotereg.ChangeServiceState, Addr: host, Name: "EventLog", StartType: remotereg.StartAuto}.ToArtifact(),
		remotereg.Change{Kind: remotereg.ChangeRegistryKey, Addr: host, Name: `SYSTEM\CurrentControlSet\Services\WinDefend`}.ToArtifact(),
		{Kind: "shell.command", Addr: host, Name: "format c:"},
	} {
		f := filepath.Join(t.TempDir(), "s1.json")
		j, err := deploy.OpenJournal(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range append(append([]deploy.Artifact(nil), mine...), hostile) {
			if _, err := j.Record(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := os.ReadFile(f)
		e, out, errb := testEnv("")
		code := run(ctx, []string{"-cleanup", "-user", "admin", f}, e)
		if code != exitFailed || !strings.Contains(errb.String(), "outside what lanconnect makes") || !strings.Contains(errb.String(), "nothing undone") {
			t.Errorf("%v: exit %d, stderr %q", hostile, code, errb.String())
		}
		if strings.Contains(errb.String(), "logon") || out.Len() != 0 {
			t.Errorf("%v: went on after the refusal: stdout %q stderr %q", hostile, out.String(), errb.String())
		}
		if after, err := os.ReadFile(f); err != nil || string(after) != string(before) {
			t.Errorf("%v: journal file changed or removed: %v", hostile, err)
		}
	}
}
