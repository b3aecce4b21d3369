package diag

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lanconnect/lanconnect/internal/testutil"
)

func TestString(t *testing.T) {
	for _, c := range []struct {
		d    Diagnosis
		want string
	}{
		{Diagnosis{}, ""},
		{Diagnosis{Code: Other, Summary: "It failed."}, "It failed."},
		{Diagnosis{Code: Other, Summary: "It failed.", Fix: "Do this."}, "It failed. Fix: Do this."},
		{Diagnosis{Code: Other, Fix: "Do this."}, "Fix: Do this."},
	} {
		if got := c.d.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.d, got, c.want)
		}
	}
	if !(Diagnosis{}).IsZero() || (Diagnosis{Summary: "x"}).IsZero() {
		t.Error("IsZero is wrong")
	}
	b, _ := json.Marshal(Diagnosis{Code: Canceled, Summary: "s"})
	if string(b) != `{"code":"canceled","summary":"s"}` {
		t.Errorf("JSON = %s", b)
	}
}

// sourceCodes parses the package's Go files and returns every constant
// of type Code: its value and its name.
func sourceCodes(t *testing.T) map[string]string {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, n := range names {
		if !strings.HasSuffix(n, "_test.go") {
			files = append(files, n)
		}
	}
	out := map[string]string{}
	for _, c := range testutil.Consts(t, "Code", files...) {
		if prev, dup := out[c.Str]; dup {
			t.Errorf("code %q is both %s and %s", c.Str, prev, c.Name)
		}
		out[c.Str] = c.Name
	}
	return out
}

var docRow = regexp.MustCompile("^\\| `([a-z0-9-]+)` \\|(.*)\\|(.*)\\|(.*)\\|$")

// TestDocListsEveryCode fails when a Code constant is missing from
// docs/diagnoses.md, or the page lists a code that has no constant, or a
// row has no summary or no fix.
func TestDocListsEveryCode(t *testing.T) {
	codes := sourceCodes(t)
	if len(codes) < 70 {
		t.Fatalf("parsed only %d codes: %v", len(codes), codes)
	}
	raw, err := os.ReadFile("../docs/diagnoses.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		m := docRow.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		code := m[1]
		if documented[code] {
			t.Errorf("docs/diagnoses.md lists %q twice", code)
		}
		documented[code] = true
		if _, ok := codes[code]; !ok {
			t.Errorf("docs/diagnoses.md lists %q, which is no diag.Code constant", code)
		}
		if strings.TrimSpace(m[3]) == "" || strings.TrimSpace(m[4]) == "" {
			t.Errorf("docs/diagnoses.md: %q needs a summary and a fix", code)
		}
	}
	var missing []string
	for c, name := range codes {
		if !documented[c] {
			missing = append(missing, name+" ("+c+")")
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("docs/diagnoses.md does not list: %s", strings.Join(missing, ", "))
	}
}

func TestStatusTexts(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{Win32Text(8), "ERROR_NOT_ENOUGH_MEMORY (8): the computer ran out of memory (or of a server resource such as RPC buffers) for this call"},
		{Win32Text(99999), "win32 error 99999"},
		{NTStatusText(0xC000006D), "STATUS_LOGON_FAILURE (0xC000006D): the user name or password is wrong"},
		{NTStatusText(0xC0001234), "NTSTATUS 0xC0001234"},
		{HResultText(0x80070005), "E_ACCESSDENIED (0x80070005): the account may not activate or call this object"},
		{HResultText(0x80070002), "HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) (0x80070002): the file, registry value or service named does not exist"},
		{HResultText(0x80001234), "HRESULT 0x80001234"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	// The codes the issue names must all be explained.
	for _, code := range []uint32{5, 8, 53, 193, 1053, 1060} {
		if _, m := Win32(code); m == "" {
			t.Errorf("Win32(%d) has no meaning", code)
		}
	}
	for _, tbl := range []map[uint32]status{win32, ntstatus, hresult} {
		for code, s := range tbl {
			if s.name == "" || s.meaning == "" || strings.HasSuffix(s.meaning, ".") {
				t.Errorf("0x%08X: %+v: want a name and a meaning without a final period", code, s)
			}
		}
	}
}
