package apicheck

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Module is the module path the lines name packages by.
const Module = "github.com/lanconnect/lanconnect"

// Public lists the packages whose exported API is recorded, as paths
// relative to the module's root.
var Public = []string{
	"adauth", "deploy", "diag", "discovery", "discovery/smbprobe", "laps", "netbios",
	"netbios/nbnstest", "remotereg", "session", "session/checkin", "session/sessiontest",
	"standard", "wmi",
}

// Dump returns the sorted API lines of the packages in dirs (relative to
// root, the module's directory). It returns an error when a package does
// not parse or holds no Go files.
func Dump(root string, dirs []string) ([]string, error) {
	var lines []string
	for _, d := range dirs {
		l, err := dumpPackage(filepath.Join(root, filepath.FromSlash(d)), Module+"/"+d)
		if err != nil {
			return nil, err
		}
		lines = append(lines, l...)
	}
	slices.Sort(lines)
	return slices.Compact(lines), nil
}

func dumpPackage(dir, path string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("apicheck: %w", err)
		}
		if !buildsOnLinux(f) {
			continue
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("apicheck: no Go files in %s", dir)
	}
	d := dumper{fset: fset, prefix: "pkg " + path + ", "}
	for _, f := range files {
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				d.fun(decl)
			case *ast.GenDecl:
				d.gen(decl)
			}
		}
	}
	return d.lines, nil
}

// buildsOnLinux reports whether a file's //go:build line (if any) keeps it
// in a linux/amd64 build: the API is recorded as that build sees it.
func buildsOnLinux(f *ast.File) bool {
	for _, g := range f.Comments {
		for _, c := range g.List {
			if expr, ok := strings.CutPrefix(c.Text, "//go:build "); ok {
				return !strings.Contains(expr, "windows") || strings.Contains(expr, "!windows")
			}
		}
	}
	return true
}

type dumper struct {
	fset   *token.FileSet
	prefix string
	lines  []string
}

func (d *dumper) add(s string) { d.lines = append(d.lines, d.prefix+s) }

// expr prints n as the source writes it, on one line.
func (d *dumper) expr(n ast.Node) string {
	var b bytes.Buffer
	_ = printer.Fprint(&b, d.fset, n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// sig prints a function type without parameter names.
func (d *dumper) sig(ft *ast.FuncType) string {
	list := func(fl *ast.FieldList) []string {
		var out []string
		if fl == nil {
			return nil
		}
		for _, f := range fl.List {
			n := max(len(f.Names), 1)
			for range n {
				out = append(out, d.expr(f.Type))
			}
		}
		return out
	}
	s := "(" + strings.Join(list(ft.Params), ", ") + ")"
	switch res := list(ft.Results); len(res) {
	case 0:
	case 1:
		s += " " + res[0]
	default:
		s += " (" + strings.Join(res, ", ") + ")"
	}
	return s
}

func (d *dumper) fun(f *ast.FuncDecl) {
	if !f.Name.IsExported() {
		return
	}
	if f.Recv == nil {
		d.add("func " + f.Name.Name + d.sig(f.Type))
		return
	}
	recv := f.Recv.List[0].Type
	base := recv
	if st, ok := base.(*ast.StarExpr); ok {
		base = st.X
	}
	if ix, ok := base.(*ast.IndexExpr); ok {
		base = ix.X
	}
	if id, ok := base.(*ast.Ident); !ok || !id.IsExported() {
		return
	}
	d.add("method (" + d.expr(recv) + ") " + f.Name.Name + d.sig(f.Type))
}

func (d *dumper) gen(g *ast.GenDecl) {
	var typ ast.Expr // a const group's type carries to the specs that omit it
	for _, spec := range g.Specs {
		switch s := spec.(type) {
		case *ast.TypeSpec:
			d.typ(s)
		case *ast.ValueSpec:
			kind := "var"
			if g.Tok == token.CONST {
				kind = "const"
				if s.Type != nil || len(s.Values) > 0 {
					typ = s.Type
				}
			} else {
				typ = s.Type
			}
			for i, n := range s.Names {
				if !n.IsExported() {
					continue
				}
				line := kind + " " + n.Name
				if typ != nil {
					line += " " + d.expr(typ)
				}
				if g.Tok == token.CONST && i < len(s.Values) {
					if lit, ok := s.Values[i].(*ast.BasicLit); ok {
						line += " = " + lit.Value
					}
				}
				d.add(line)
			}
		}
	}
}

func (d *dumper) typ(s *ast.TypeSpec) {
	if !s.Name.IsExported() {
		return
	}
	name := s.Name.Name
	if s.TypeParams != nil {
		name += d.expr(s.TypeParams)
	}
	if s.Assign.IsValid() {
		d.add("type " + name + " = " + d.expr(s.Type))
		return
	}
	switch t := s.Type.(type) {
	case *ast.StructType:
		d.add("type " + name + " struct")
		for _, f := range t.Fields.List {
			if len(f.Names) == 0 { // embedded
				if e := d.expr(f.Type); ast.IsExported(strings.TrimLeft(e[strings.LastIndex(e, ".")+1:], "*")) {
					d.add("type " + name + " struct, embedded " + e)
				}
				continue
			}
			for _, n := range f.Names {
				if n.IsExported() {
					d.add("type " + name + " struct, " + n.Name + " " + d.expr(f.Type))
				}
			}
		}
	case *ast.InterfaceType:
		d.add("type " + name + " interface")
		for _, m := range t.Methods.List {
			if len(m.Names) == 0 {
				d.add("type " + name + " interface, embedded " + d.expr(m.Type))
				continue
			}
			for _, n := range m.Names {
				if ft, ok := m.Type.(*ast.FuncType); ok && n.IsExported() {
					d.add("type " + name + " interface, " + n.Name + d.sig(ft))
				}
			}
		}
	default:
		d.add("type " + name + " " + d.expr(s.Type))
	}
}
