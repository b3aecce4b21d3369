package apicheck

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
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
