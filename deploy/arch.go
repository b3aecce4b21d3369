package deploy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lanconnect/lanconnect/diag"
)

// The Windows processor architectures of applet variants (Applet.Arch),
// named as Go names them (GOARCH).
const (
	Arch386   = "386"   // 32-bit x86
	ArchAMD64 = "amd64" // x64
	ArchARM64 = "arm64" // Windows on ARM
)

// ArchDefault is the label of the default applet (an Applet whose Arch is
// empty) in Target.AppletArch and in the NDJSON of examples/connect.
const ArchDefault = "default"

// ErrNoAppletForArch means no applet variant runs on the target's
// architecture (or the architecture is unknown and there is no default
// to fall back on). *ArchError matches it.
var ErrNoAppletForArch = errors.New("deploy: no applet for the target's architecture")

// NormalizeArch maps what a Windows computer reports as its architecture
// to Arch386, ArchAMD64 or ArchARM64: the PROCESSOR_ARCHITECTURE
// environment value ("x86", "AMD64", "ARM64"), WMI's
// Win32_OperatingSystem.OSArchitecture ("32-bit", "64-bit", "ARM
// 64-bit Processor", in the system's language) and Go's names. It
// returns "" for an empty value and for architectures no applet variant
// can name (IA64, 32-bit ARM). It does not ask the computer anything.
func NormalizeArch(reported string) string {
	s := strings.ToLower(strings.TrimSpace(reported))
	switch s {
	case "":
		return ""
	case "x86", "386", "i386", "i686":
		return Arch386
	case "amd64", "x64", "x86_64", "em64t":
		return ArchAMD64
	case "arm64", "aarch64":
		return ArchARM64
	}
	// WMI's OSArchitecture is free text (and localised): "ARM 64-bit
	// Processor", "64-bit", "64 bits", "32-bit".
	switch {
	case strings.Contains(s, "arm") && strings.Contains(s, "64"):
		return ArchARM64
	case strings.Contains(s, "arm"), strings.Contains(s, "ia64"), strings.Contains(s, "itanium"):
		return ""
	case strings.Contains(s, "64"):
		return ArchAMD64
	case strings.Contains(s, "32"):
		return Arch386
	}
	return ""
}

// Applets are the variants of one applet, at most one per architecture
// (Applet.Arch) and at most one default (Arch empty). A vendor that ships
// one build needs no Applets: a single Applet is its own default.
type Applets []Applet

// Validate checks every variant (Applet.Validate), their Arch values
// (empty, Arch386, ArchAMD64 or ArchARM64) and that no architecture, nor
// the default, appears twice. An empty set is invalid. Errors match
// ErrBadApplet.
func (as Applets) Validate() error {
	if len(as) == 0 {
		return fmt.Errorf("%w: no applet", ErrBadApplet)
	}
	seen := map[string]bool{}
	for _, a := range as {
		if err := a.Validate(); err != nil {
			return err
		}
		switch a.Arch {
		case "", Arch386, ArchAMD64, ArchARM64:
		default:
			return fmt.Errorf("%w: architecture %q (want %s, %s or %s, or none for the default)", ErrBadApplet, a.Arch, Arch386, ArchAMD64, ArchARM64)
		}
		if seen[a.Arch] {
			return fmt.Errorf("%w: two applets for %s", ErrBadApplet, archLabel(a.Arch))
		}
		seen[a.Arch] = true
	}
	return nil
}

// NeedsArch reports whether the choice depends on the target's
// architecture: some variant names one. A set with only a default does
// not need it.
func (as Applets) NeedsArch() bool {
	return slices.ContainsFunc(as, func(a Applet) bool { return a.Arch != "" })
}

// Archs returns the architectures of the variants, the default as
// ArchDefault, in the set's order.
func (as Applets) Archs() []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, archLabel(a.Arch))
	}
	return out
}

func archLabel(arch string) string {
	if arch == "" {
		return ArchDefault
	}
	return arch
}

// Label returns the applet's architecture as Target.AppletArch and the
// NDJSON of examples/connect say it: its Arch, or ArchDefault.
func (a Applet) Label() string { return archLabel(a.Arch) }

// Choose returns the variant to copy to a computer whose architecture is
// reported as arch (any form NormalizeArch knows; "" when unknown). The
// order is: the native variant; then the default; then one that Windows
// runs through emulation on that architecture (on arm64: amd64, which
// Windows 11 emulates, then 386; on amd64: 386, through WOW64). An
// unknown architecture gets the default, else the amd64 variant (the
// common case). When nothing fits it returns an *ArchError (matching
// ErrNoAppletForArch) that names the architecture: such an applet would
// fail to start with ERROR_BAD_EXE_FORMAT (193). It does not validate
// the set (see Validate).
func (as Applets) Choose(arch string) (Applet, error) {
	norm := NormalizeArch(arch)
	find := func(want string) (Applet, bool) {
		i := slices.IndexFunc(as, func(a Applet) bool { return a.Arch == want })
		if i < 0 {
			return Applet{}, false
		}
		return as[i], true
	}
	var order []string
	switch norm {
	case ArchARM64:
		order = []string{ArchARM64, "", ArchAMD64, Arch386}
	case ArchAMD64:
		order = []string{ArchAMD64, "", Arch386}
	case Arch386:
		order = []string{Arch386, ""}
	default:
		if strings.TrimSpace(arch) == "" {
			order = []string{"", ArchAMD64}
		} else {
			order = []string{""} // IA64, 32-bit ARM: only a default may know better
		}
	}
	for _, want := range order {
		if a, ok := find(want); ok {
			return a, nil
		}
	}
	return Applet{}, &ArchError{Reported: strings.TrimSpace(arch), Arch: norm, Have: as.Archs()}
}

// ArchError is a target no applet variant runs on. It matches
// ErrNoAppletForArch and carries a diagnosis (code
// "applet-arch-unsupported").
type ArchError struct {
	// Reported is the architecture as the computer reported it
	// ("x86", "ARM 64-bit Processor"), empty when unknown.
	Reported string
	// Arch is Reported normalised (NormalizeArch), empty when unknown.
	Arch string
	// Have lists the variants there are (Applets.Archs).
	Have []string
}

func (e *ArchError) Error() string {
	if e.Reported == "" {
		return fmt.Sprintf("deploy: the target's architecture is unknown and no applet variant is a default or amd64 (variants: %s)", strings.Join(e.Have, ", "))
	}
	return fmt.Sprintf("deploy: no applet for the target's architecture %s (variants: %s)", archName(e.Reported, e.Arch), strings.Join(e.Have, ", "))
}

// Is makes errors.Is(err, ErrNoAppletForArch) true.
func (e *ArchError) Is(target error) bool { return target == ErrNoAppletForArch }

// Diagnose explains the error to a technician (diag.Diagnoser).
func (e *ArchError) Diagnose() diag.Diagnosis {
	have := strings.Join(e.Have, ", ")
	if e.Reported == "" {
		return diag.Diagnosis{Code: diag.AppletArchUnsupported,
			Summary: "The computer's processor architecture could not be read (neither Remote Registry nor WMI answered), and none of the applet's variants (" + have + ") is a default or an amd64 build. Nothing was copied.",
			Fix:     "Start Remote Registry or allow WMI on the computer so that its architecture can be read, or give a default applet (connect -applet FILE)."}
	}
	want := e.Arch
	if want == "" {
		want = e.Reported
	}
	return diag.Diagnosis{Code: diag.AppletArchUnsupported,
		Summary: "The computer runs Windows on " + archName(e.Reported, e.Arch) + ", and none of the applet's variants (" + have + ") runs there: Windows would refuse it with ERROR_BAD_EXE_FORMAT (193). Nothing was copied.",
		Fix:     "Add a " + want + " build of the applet (connect -applet windows/" + strings.ToLower(want) + "=FILE), or a default applet that runs there."}
}

func archName(reported, norm string) string {
	switch norm {
	case Arch386:
		return "x86 (32-bit, reported as " + quoteArch(reported) + ")"
	case ArchAMD64:
		return "x64 (amd64, reported as " + quoteArch(reported) + ")"
	case ArchARM64:
		return "ARM64 (reported as " + quoteArch(reported) + ")"
	}
	return quoteArch(reported)
}

// quoteArch quotes a value the computer chose, keeping it printable.
func quoteArch(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return fmt.Sprintf("%q", s)
}
