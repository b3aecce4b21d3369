package deploy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
)

func TestNormalizeArch(t *testing.T) {
	for in, want := range map[string]string{
		"x86": "386", "X86": "386", "AMD64": "amd64", "ARM64": "arm64", " amd64 ": "amd64",
		"64-bit": "amd64", "32-bit": "386", "ARM 64-bit Processor": "arm64", "64 bits": "amd64", "64-Bit": "amd64",
		"IA64": "", "ARM": "", "": "", "mips": "", "386": "386", "arm64": "arm64",
	} {
		if got := deploy.NormalizeArch(in); got != want {
			t.Errorf("NormalizeArch(%q) = %q, want %q", in, got, want)
		}
	}
}

func set(archs ...string) deploy.Applets {
	var out deploy.Applets
	for _, a := range archs {
		ap := deploy.AppletFromBytes("app.exe", "1", []byte("MZ "+a))
		ap.Arch = a
		out = append(out, ap)
	}
	return out
}

func TestAppletsChoose(t *testing.T) {
	for _, tc := range []struct {
		set      deploy.Applets
		reported string
		want     string // the chosen label; "" for ErrNoAppletForArch
	}{
		{set("amd64", "386", "arm64"), "x86", "386"},
		{set("amd64", "386", "arm64"), "AMD64", "amd64"},
		{set("amd64", "386", "arm64"), "ARM 64-bit Processor", "arm64"},
		{set("amd64", ""), "ARM64", "default"},  // the default before emulation
		{set("amd64", "386"), "ARM64", "amd64"}, // Windows 11 on ARM emulates x64
		{set("386"), "ARM64", "386"},
		{set("386"), "AMD64", "386"}, // WOW64
		{set("amd64", ""), "x86", "default"},
		{set("amd64", "arm64"), "x86", ""}, // 193 on 32-bit Windows
		{set("amd64"), "IA64", ""},
		{set("amd64", ""), "IA64", "default"},
		{set("arm64", ""), "", "default"},
		{set("arm64", "amd64"), "", "amd64"},
		{set("arm64"), "", ""},
		{set(""), "x86", "default"},
	} {
		a, err := tc.set.Choose(tc.reported)
		if tc.want == "" {
			var ae *deploy.ArchError
			if !errors.Is(err, deploy.ErrNoAppletForArch) || !errors.As(err, &ae) || ae.Reported != tc.reported {
				t.Errorf("%v on %q: %v, %v", tc.set.Archs(), tc.reported, a.Label(), err)
				continue
			}
			d := ae.Diagnose()
			if d.Code != diag.AppletArchUnsupported || d.Summary == "" || d.Fix == "" {
				t.Errorf("diagnosis %+v", d)
			}
			if tc.reported != "" && (!strings.Contains(d.Summary, tc.reported) || !strings.Contains(d.Summary, "193")) {
				t.Errorf("diagnosis does not name %q and 193: %s", tc.reported, d.Summary)
			}
			continue
		}
		if err != nil || a.Label() != tc.want {
			t.Errorf("%v on %q: got %q (%v), want %q", tc.set.Archs(), tc.reported, a.Label(), err, tc.want)
		}
	}
}

func TestArchErrorNamesX86(t *testing.T) {
	_, err := set("amd64", "arm64").Choose("x86")
	d := err.(*deploy.ArchError).Diagnose()
	if !strings.Contains(d.Summary, "x86 (32-bit") || !strings.Contains(d.Fix, "windows/386=") || !strings.Contains(err.Error(), "amd64, arm64") {
		t.Fatalf("%v / %+v", err, d)
	}
}

func TestAppletsValidate(t *testing.T) {
	if err := set("amd64", "386", "arm64", "").Validate(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]deploy.Applets{
		"empty":        nil,
		"two amd64":    set("amd64", "amd64"),
		"two defaults": set("", ""),
		"unknown arch": set("ia64"),
		"x86 spelling": set("x86"),
		"bad applet":   {deploy.Applet{Name: "a/b.exe", Path: "x", Arch: "amd64"}},
	} {
		if err := bad.Validate(); !errors.Is(err, deploy.ErrBadApplet) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if set("").NeedsArch() || !set("", "arm64").NeedsArch() {
		t.Fatal("NeedsArch")
	}
}
