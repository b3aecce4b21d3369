package winemu_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

func TestMapPath(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "Temp", "LanConnect"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "Temp", "LanConnect", "Applet.exe"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(root, "Temp", "LanConnect", "Applet.exe")
	for _, in := range []string{
		`C:\Windows\Temp\LanConnect\Applet.exe`,
		`c:\windows\TEMP\lanconnect\APPLET.EXE`,
		`%SystemRoot%\Temp\LanConnect\applet.exe`,
		`%windir%\temp\lanconnect\applet.exe`,
		`\SystemRoot\Temp\LanConnect\Applet.exe`,
		`\\?\C:\Windows\Temp\LanConnect\Applet.exe`,
		`\??\C:\Windows\Temp\LanConnect\Applet.exe`,
		`C:/Windows/Temp/LanConnect/Applet.exe`,
		`C:\Windows\.\Temp\\LanConnect\Applet.exe`,
	} {
		got, err := winemu.MapPath(root, in)
		if err != nil || got != want {
			t.Errorf("MapPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// Missing components are kept as written.
	if got, err := winemu.MapPath(root, `C:\Windows\System32\new.exe`); err != nil || got != filepath.Join(root, "System32", "new.exe") {
		t.Errorf("missing path = %q, %v", got, err)
	}
	for _, in := range []string{`D:\x.exe`, `C:\WindowsApps\x.exe`, `C:\Windows\..\x.exe`, `C:\Windows\Temp\..\..\etc\passwd`, `relative.exe`, ``} {
		if got, err := winemu.MapPath(root, in); !errors.Is(err, winemu.ErrPathNotMapped) {
			t.Errorf("MapPath(%q) = %q, %v; want ErrPathNotMapped", in, got, err)
		}
	}
}

func TestParseCommandLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		exe  string
		args []string
	}{
		{`C:\Windows\a.exe`, `C:\Windows\a.exe`, nil},
		{`"C:\Program Files\a b.exe" -x "y z"`, `C:\Program Files\a b.exe`, []string{"-x", "y z"}},
		{`C:\Windows\Temp\app.exe -token abc  -n 3`, `C:\Windows\Temp\app.exe`, []string{"-token", "abc", "-n", "3"}},
		{`C:\Windows\Temp\My App.EXE --flag`, `C:\Windows\Temp\My App.EXE`, []string{"--flag"}},
		{`C:\Windows\tool arg`, `C:\Windows\tool`, []string{"arg"}},
		{`a.exe "a\"b" c\\d "e\\" ""`, `a.exe`, []string{`a"b`, `c\\d`, `e\`, ``}},
	} {
		exe, args, err := winemu.ParseCommandLine(tc.in)
		if err != nil || exe != tc.exe || !slices.Equal(args, tc.args) {
			t.Errorf("ParseCommandLine(%q) = %q %q %v; want %q %q", tc.in, exe, args, err, tc.exe, tc.args)
		}
	}
	for _, in := range []string{"", "   ", `"unterminated`, `a.exe "open`} {
		if _, _, err := winemu.ParseCommandLine(in); !errors.Is(err, winemu.ErrBadCommandLine) {
			t.Errorf("ParseCommandLine(%q) error = %v", in, err)
		}
	}
}
