package testutil

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// Const is one constant declared with an explicit type: its name and its
// value, a string for a string literal and a number otherwise.
type Const struct {
	Name string
	Str  string
	Num  uint64
}

// Consts parses the Go source files and returns every constant declared
// with the type named typ and a literal value, in source order. Tests use
// it to check that a table (a status name, a documentation row) covers
// every constant of a type. It fails t on a file it cannot parse or a
// value it cannot read; it does not type-check.
func Consts(t testing.TB, typ string, files ...string) []Const {
	t.Helper()
	var out []Const
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typ {
					continue
				}
				for i, name := range vs.Names {
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok {
						t.Fatalf("%s: %s has no literal value", file, name.Name)
					}
					c := Const{Name: name.Name}
					if lit.Kind == token.STRING {
						c.Str, err = strconv.Unquote(lit.Value)
					} else {
						c.Num, err = strconv.ParseUint(lit.Value, 0, 64)
					}
					if err != nil {
						t.Fatalf("%s: %s: %v", file, name.Name, err)
					}
					out = append(out, c)
				}
			}
		}
	}
	return out
}
