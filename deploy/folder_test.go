package deploy

import (
	"errors"
	"regexp"
	"testing"
)

func TestFolderName(t *testing.T) {
	re := regexp.MustCompile(`^lanconnect-s0123abc-[0-9a-f]{8}$`)
	a, b := FolderName("s0123abc"), FolderName("s0123abc")
	if !re.MatchString(a) || !re.MatchString(b) || a == b {
		t.Fatalf("%q %q", a, b)
	}
	if got := FolderName(`..\x/y:z`); !regexp.MustCompile(`^lanconnect-xyz-[0-9a-f]{8}$`).MatchString(got) {
		t.Fatalf("%q", got)
	}
	if got := FolderName(""); !regexp.MustCompile(`^lanconnect-[0-9a-f]{8}$`).MatchString(got) {
		t.Fatalf("%q", got)
	}
	if err := checkFolderName(FolderName("s1")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "a\\b", "a/b", "..", ".", "a:b"} {
		if err := checkFolderName(bad); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestCheckFolder(t *testing.T) {
	for _, c := range []struct{ share, dir, wantDir string }{
		{"", "", ""}, {"admin$", "", ""}, {"ADMIN$", `Acme`, `Acme`}, {"", `/Acme/Sessions/`, `Acme\Sessions`},
		{"", `Temporary`, `Temporary`}, {"", `System32\Acme`, `System32\Acme`},
	} {
		share, dir, err := CheckFolder(c.share, c.dir)
		if err != nil || share != "ADMIN$" || dir != c.wantDir {
			t.Errorf("%q %q: %q %q %v", c.share, c.dir, share, dir, err)
		}
	}
	for _, c := range []struct{ share, dir string }{
		{"C$", ""}, {"IPC$", ""}, {"D$", `Windows`},
		{"", `Temp`}, {"", `TEMP\lanconnect`}, {"", `.\temp\x`}, {"", `Tasks`}, {"", `system32\tasks\x`}, {"", `System32\spool\drivers\color`},
		{"", `tracing`}, {"", `Registration\CRMLog`},
	} {
		if _, _, err := CheckFolder(c.share, c.dir); !errors.Is(err, ErrUnsafeFolder) || !errors.Is(err, ErrBadOptions) {
			t.Errorf("%q %q: %v", c.share, c.dir, err)
		}
	}
	if _, _, err := CheckFolder("", `..\x`); !errors.Is(err, ErrBadOptions) {
		t.Errorf("climb: %v", err)
	}
}
