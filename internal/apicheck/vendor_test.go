package apicheck

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The vendor programs of examples/vendor are written as a vendor would
// write them: their code (tests aside) imports no internal package of
// this module, so whatever they do, a program outside the module can do
// too. Importing one here fails the test.
func TestVendorProgramsUsePublicPackagesOnly(t *testing.T) {
	root := filepath.Join("..", "..", "examples", "vendor")
	programs := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		if f.Name.Name == "main" {
			programs[filepath.Dir(path)] = true
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if strings.HasPrefix(p, "github.com/lanconnect/lanconnect/") && (strings.Contains(p, "/internal/") || strings.HasSuffix(p, "/internal")) {
				t.Errorf("%s imports %s: a vendor program must use the public packages only", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(programs) != 3 {
		t.Fatalf("found programs %v; want the three of issue 21 (console, direct, plugin)", programs)
	}
}

// Every public package (any package of the module outside internal/ and
// examples/) is in Public, so that its API is recorded.
func TestEveryPublicPackageRecorded(t *testing.T) {
	root := filepath.Join("..", "..")
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "internal" || rel == "examples" || rel == "testdata" || strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") && filepath.Dir(path) != root {
			dir := filepath.ToSlash(filepath.Dir(rel))
			if !slices.Contains(found, dir) {
				found = append(found, dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(found)
	want := slices.Sorted(slices.Values(Public))
	if !slices.Equal(found, want) {
		t.Fatalf("public packages %v\nPublic lists %v", found, want)
	}
}
