package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestFileScope(t *testing.T) {
	s, err := FileScope("")
	if err != nil {
		t.Fatal(err)
	}
	in := []Artifact{
		{Kind: KindDir, Share: "ADMIN$", Path: `lanconnect-s1-0a1b2c3d`},
		{Kind: KindFile, Share: "admin$", Path: `lanconnect-s1-0a1b2c3d\lcapplet-s1.exe`},
		{Kind: KindFile, Share: "ADMIN$", Path: `LanConnect-s1-0a1b2c3d\.lcapplet-s1.exe.0011.lcpart`},
	}
	if err := s.Check(in); err != nil {
		t.Fatal(err)
	}
	for _, a := range []Artifact{
		{Kind: KindFile, Share: "ADMIN$", Path: `System32\drivers\etc\hosts`},
		{Kind: KindDir, Share: "ADMIN$", Path: `System32`},
		{Kind: KindFile, Share: "C$", Path: `lanconnect-x\a.exe`},
		{Kind: KindFile, Share: "ADMIN$", Path: `lanconnect-x\..\System32\cmd.exe`},
		{Kind: KindFile, Share: "ADMIN$", Path: `lanconnect-x\sub\a.exe`},
		{Kind: KindFile, Share: "ADMIN$", Path: `lanconnect-x`},
		{Kind: KindDir, Share: "ADMIN$", Path: `lanconnect-`},
		{Kind: KindFile, Share: "ADMIN$", Path: `lanconnect-x\a.exe:stream`},
		{Kind: KindFile, Share: "ADMIN$", Path: `Temp\lanconnect\a.exe`},
		{Kind: KindDir, Share: "ADMIN$", Path: ``},
		{Kind: "other", Share: "ADMIN$", Path: `lanconnect-x`},
	} {
		err := s.Check([]Artifact{a})
		var se *ScopeError
		if !errors.Is(err, ErrOutOfScope) || !errors.As(err, &se) || len(se.Out) != 1 {
			t.Errorf("%v: %v", a, err)
		}
	}

	// A custom parent: its components and the folders in it.
	s, err = FileScope(`Acme/Sessions`)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check([]Artifact{
		{Kind: KindDir, Share: "ADMIN$", Path: `Acme`}, {Kind: KindDir, Share: "ADMIN$", Path: `Acme\Sessions`},
		{Kind: KindDir, Share: "ADMIN$", Path: `Acme\Sessions\lanconnect-1`}, {Kind: KindFile, Share: "ADMIN$", Path: `acme\sessions\lanconnect-1\a.exe`},
	}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []Artifact{
		{Kind: KindFile, Share: "ADMIN$", Path: `Acme`}, {Kind: KindDir, Share: "ADMIN$", Path: `Acme\Other`},
		{Kind: KindDir, Share: "ADMIN$", Path: `lanconnect-1`}, {Kind: KindFile, Share: "ADMIN$", Path: `Acme\Sessions\a.exe`},
	} {
		if err := s.Check([]Artifact{a}); !errors.Is(err, ErrOutOfScope) {
			t.Errorf("%v: %v", a, err)
		}
	}
	if _, err := FileScope(`Temp`); !errors.Is(err, ErrUnsafeFolder) {
		t.Fatalf("Temp parent: %v", err)
	}
}

func TestUndoWithinRefusesWholeJournal(t *testing.T) {
	ctx := context.Background()
	var j Journal
	j.Record(ctx, Artifact{Kind: KindDir, Addr: "h", Share: "ADMIN$", Path: `lanconnect-s1-00000000`})
	j.Record(ctx, Artifact{Kind: KindFile, Addr: "h", Share: "ADMIN$", Path: `lanconnect-s1-00000000\a.exe`})
	j.Record(ctx, Artifact{Kind: KindFile, Addr: "h", Share: "ADMIN$", Path: `System32\config\SAM`})
	called := 0
	undo := func(context.Context, Artifact) error { called++; return nil }
	s, _ := FileScope("")
	rep, err := j.UndoWithin(ctx, Undoers{KindFile: undo, KindDir: undo}, s)
	if !errors.Is(err, ErrOutOfScope) || called != 0 || len(rep.Undone) != 0 || j.Len() != 3 {
		t.Fatalf("err %v, called %d, report %+v, left %d", err, called, rep, j.Len())
	}
	if !strings.Contains(err.Error(), `System32\config\SAM`) || !strings.Contains(err.Error(), "nothing undone") {
		t.Fatalf("error does not say what and why: %v", err)
	}
	// Within scope, it undoes.
	var ok Journal
	ok.Record(ctx, Artifact{Kind: KindDir, Addr: "h", Share: "ADMIN$", Path: `lanconnect-s1-00000000`})
	if rep, err := ok.UndoWithin(ctx, Undoers{KindFile: undo, KindDir: undo}, s); err != nil || !rep.OK() || ok.Len() != 0 {
		t.Fatalf("%+v %v", rep, err)
	}
}
