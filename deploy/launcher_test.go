package deploy

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

func TestLaunchErrorMatchesKindAndCause(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	err := error(&LaunchError{Launcher: "remotereg", Step: "create service", Kind: ErrServiceExists,
		Diagnosis: diag.Diagnosis{Code: diag.ServiceExists, Summary: "A service with this name exists."}, Err: cause})
	if !errors.Is(err, ErrServiceExists) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("errors.Is fails on %v", err)
	}
	if errors.Is(err, ErrAccessDenied) {
		t.Fatal("matches the wrong kind")
	}
	var pe *fs.PathError
	var le *LaunchError
	if !errors.As(err, &pe) || !errors.As(err, &le) || le.Step != "create service" {
		t.Fatal("errors.As fails")
	}
	for _, want := range []string{"remotereg", "create service", "already exists", "A service with this name exists."} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err.Error(), want)
		}
	}
	if (&LaunchError{}).Error() == "" {
		t.Error("zero LaunchError has an empty message")
	}
}

func TestDiagnosisString(t *testing.T) {
	if !(diag.Diagnosis{}).IsZero() || (diag.Diagnosis{Code: "x"}).IsZero() {
		t.Error("IsZero")
	}
	if got := (diag.Diagnosis{Summary: "S.", Fix: "R."}).String(); got != "S. Fix: R." {
		t.Errorf("String = %q", got)
	}
}

func TestLaunchSpecValidate(t *testing.T) {
	good := LaunchSpec{Path: `C:\Windows\Temp\applet.exe`, Args: []string{"-token", "abc def"},
		Params: map[string]string{"Console": "10.0.0.1:443"}, SessionID: "s-1", Vendor: "Acme Corp", Applet: "Helper",
		ServicePrefix: "acme-helper"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	if err := (LaunchSpec{Path: `c:\a.exe`}).Validate(); err != nil {
		t.Fatalf("minimal spec: %v", err)
	}
	bad := []func(*LaunchSpec){
		func(s *LaunchSpec) { s.Path = "" },
		func(s *LaunchSpec) { s.Path = `Windows\Temp\a.exe` },
		func(s *LaunchSpec) { s.Path = `/tmp/a.exe` },
		func(s *LaunchSpec) { s.Path = `C:\Temp\` },
		func(s *LaunchSpec) { s.Path = `C:\Te"mp\a.exe` },
		func(s *LaunchSpec) { s.Args = []string{"a\nb"} },
		func(s *LaunchSpec) { s.SessionID = "" },
		func(s *LaunchSpec) { s.SessionID = `..\..\Run` },
		func(s *LaunchSpec) { s.Vendor = "" },
		func(s *LaunchSpec) { s.Applet = `x\y` },
		func(s *LaunchSpec) { s.Params = map[string]string{`a\b`: "v"} },
		func(s *LaunchSpec) { s.ServicePrefix = "bad prefix" },
		func(s *LaunchSpec) { s.ServicePrefix = strings.Repeat("a", 41) },
	}
	for i, mutate := range bad {
		s := good
		s.Params = map[string]string{"Console": "x"}
		mutate(&s)
		if err := s.Validate(); !errors.Is(err, ErrBadSpec) {
			t.Errorf("case %d: err = %v, want ErrBadSpec", i, err)
		}
	}
}

func TestQuoteArg(t *testing.T) {
	cases := map[string]string{
		"plain":               "plain",
		"":                    `""`,
		"a b":                 `"a b"`,
		`a"b`:                 `"a\"b"`,
		`C:\dir with space\`:  `"C:\dir with space\\"`,
		`a\\"b`:               `"a\\\\\"b"`,
		`no\slash\quote`:      `no\slash\quote`,
		"tab\there":           "\"tab\there\"",
		`https://10.0.0.1:44`: `https://10.0.0.1:44`,
	}
	for in, want := range cases {
		if got := QuoteArg(in); got != want {
			t.Errorf("QuoteArg(%q) = %s, want %s", in, got, want)
		}
	}
	s := LaunchSpec{Path: `C:\Program Files\A\a.exe`, Args: []string{"-t", "x y"}}
	if got, want := s.CommandLine(), `"C:\Program Files\A\a.exe" -t "x y"`; got != want {
		t.Errorf("CommandLine = %s, want %s", got, want)
	}
}

// TestCommandLineRoundTrip checks CommandLine against an independent
// parser of the CommandLineToArgvW rules (winemu's, which the SCM
// emulator uses to start services): every argument comes back unchanged.
func TestCommandLineRoundTrip(t *testing.T) {
	alphabet := []byte{'a', ' ', '\t', '"', '\\', 'x', '-', ':'}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		args := make([]string, 1+rng.IntN(4))
		for k := range args {
			b := make([]byte, rng.IntN(8))
			for n := range b {
				b[n] = alphabet[rng.IntN(len(alphabet))]
			}
			args[k] = string(b)
		}
		s := LaunchSpec{Path: `C:\Program Files\Acme\applet.exe`, Args: args}
		exe, got, err := winemu.ParseCommandLine(s.CommandLine())
		if err != nil {
			t.Fatalf("%d: %q: %v", i, s.CommandLine(), err)
		}
		if exe != s.Path || !slices.Equal(got, args) {
			t.Fatalf("%d: %q parsed as %q %q, want %q", i, s.CommandLine(), exe, got, args)
		}
	}
}
