package cliutil

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSafe(t *testing.T) {
	for in, want := range map[string]string{
		"PC-01":                       "PC-01",
		"héron.lab":                   "héron.lab",
		"EVIL\x1b[2J\x1b]0;pwned\x07": `EVIL\x1b[2J\x1b]0;pwned\x07`,
		"A\rB\nC\tD\x7f":              `A\x0dB\x0aC\x09D\x7f`,
		"csi\u009b31m":                `csi\x9b31m`,
		"bidi\u202egnp.exe":           `bidi\u202egnp.exe`,
		"bad\xffutf8":                 `bad\xffutf8`,
		"":                            "",
		"line\u2028sep":               `line\u2028sep`,
	} {
		if got := Safe(in); got != want {
			t.Errorf("Safe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChildEnv(t *testing.T) {
	got := ChildEnv([]string{"PATH=/bin", "LANCONNECT_PASSWORD=s3cret", "LANCONNECT_PASSWORD_X=keep", "HOME=/root"}, "GOOS=windows")
	if strings.Join(got, " ") != "PATH=/bin LANCONNECT_PASSWORD_X=keep HOME=/root GOOS=windows" {
		t.Fatalf("ChildEnv: %q", got)
	}
}

// TestBuildAppletEnv runs BuildApplet with a fake go tool that records its
// environment: the password is not in it, GOOS is.
func TestBuildAppletEnv(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "child.env")
	script := "#!/bin/sh\nexec /usr/bin/env > " + envFile + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv("LANCONNECT_PASSWORD", "Pa55-in-env")
	if err := BuildApplet(context.Background(), filepath.Join(dir, "applet.exe"), "windows", "amd64"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "Pa55-in-env") || strings.Contains(string(b), "LANCONNECT_PASSWORD") {
		t.Fatalf("the child saw the password:\n%s", b)
	}
	if !strings.Contains(string(b), "GOOS=windows") {
		t.Fatalf("the child lacks GOOS:\n%s", b)
	}
}
