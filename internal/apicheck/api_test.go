package apicheck

import (
	"flag"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite api/lanconnect.txt from the source")

// apiFile is the recorded API, relative to this package's directory.
var apiFile = filepath.Join("..", "..", "api", "lanconnect.txt")

// TestRecordedAPI fails when the exported API of the public packages is
// not the one recorded in api/lanconnect.txt, and lists the lines that
// were added and removed.
func TestRecordedAPI(t *testing.T) {
	got, err := Dump(filepath.Join("..", ".."), Public)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(apiFile, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(apiFile)
	if err != nil {
		t.Fatalf("%v: record the API with go test ./internal/apicheck -update", err)
	}
	want := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var added, removed []string
	for _, l := range got {
		if _, ok := slices.BinarySearch(want, l); !ok {
			added = append(added, "+ "+l)
		}
	}
	for _, l := range want {
		if _, ok := slices.BinarySearch(got, l); !ok {
			removed = append(removed, "- "+l)
		}
	}
	if len(added)+len(removed) > 0 {
		t.Fatalf("the exported API differs from api/lanconnect.txt:\n%s\n\nIf the change is meant, run\n\tgo test ./internal/apicheck -update\nand add a line to CHANGELOG.md.",
			strings.Join(append(removed, added...), "\n"))
	}
}

// The dump sees what it must: a package's functions, methods, fields,
// interface methods and constants, and nothing unexported.
func TestDumpShapes(t *testing.T) {
	dir := t.TempDir()
	src := `package p

import "context"

// T is exported.
type T struct {
	A, b int
	C    context.Context
	*Embedded
}

type Embedded struct{}

type unexported struct{ X int }

func (unexported) M() {}

func (t *T) Do(ctx context.Context, n int) (string, error) { return "", nil }

type I interface {
	Get(k string) ([]byte, bool)
}

type Kind int

const (
	KA Kind = iota
	KB
	kc
)

const Name = "x"

var ErrX error

func New(a, b int, s ...string) *T { return nil }
`
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Dump(dir, []string{"."})
	if err != nil {
		t.Fatal(err)
	}
	p := "pkg " + Module + "/., "
	want := []string{
		p + "const KA Kind", p + "const KB Kind", p + `const Name = "x"`,
		p + "func New(int, int, ...string) *T",
		p + "method (*T) Do(context.Context, int) (string, error)",
		p + "type Embedded struct",
		p + "type I interface", p + "type I interface, Get(string) ([]byte, bool)",
		p + "type Kind int",
		p + "type T struct", p + "type T struct, A int", p + "type T struct, C context.Context", p + "type T struct, embedded *Embedded",
		p + "var ErrX error",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNoInternalTypes fails when the exported API of a public package
// names a type of an internal package (issue 21 §2): a vendor cannot
// write that type's name. The API lines name types by their package's
// local name, so the test finds, per package, the names under which its
// files import packages under internal/, and looks for "name." in that
// package's lines.
func TestNoInternalTypes(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, d := range Public {
		internal, err := internalImports(filepath.Join(root, filepath.FromSlash(d)))
		if err != nil {
			t.Fatal(err)
		}
		lines, err := Dump(root, []string{d})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			for name, path := range internal {
				if regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\.`).MatchString(l) {
					t.Errorf("%s names a type of %s:\n\t%s", d, path, l)
				}
			}
		}
	}
}

// internalImports returns the local names of the packages under
// internal/ that the non-test Go files in dir import, with their paths.
func internalImports(dir string) (map[string]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ImportsOnly)
		if err != nil {
			return nil, err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.Contains(p, "/internal/") && !strings.HasPrefix(p, "internal/") {
				continue
			}
			name := path.Base(p)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			out[name] = p
		}
	}
	return out, nil
}
