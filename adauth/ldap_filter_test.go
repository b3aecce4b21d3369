package adauth

import (
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

func TestEscapeFilterValue(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"ws-01":            "ws-01",
		"*":                `\2a`,
		"a(b)c":            `a\28b\29c`,
		`back\slash`:       `back\5cslash`,
		"nul\x00":          `nul\00`,
		"ÿ":                `\c3\bf`,
		"*)(objectClass=*": `\2a\29\28objectClass=\2a`,
	} {
		if got := EscapeFilterValue(in); got != want {
			t.Errorf("EscapeFilterValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestComputerFilter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		disabled bool
		want     string
	}{
		{"", false, "(&(objectClass=computer)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"},
		{"", true, "(&(objectClass=computer))"},
		{"ws", false, "(&(objectClass=computer)(!(userAccountControl:1.2.840.113556.1.4.803:=2))(name=*ws*))"},
		{"WS-*", true, "(&(objectClass=computer)(name=WS-*))"},
		{"*-01", true, "(&(objectClass=computer)(name=*-01))"},
		{"a**b*", true, "(&(objectClass=computer)(name=a*b*))"},
		{"*", true, "(&(objectClass=computer)(name=*))"},
		{"x)(cn=*", true, `(&(objectClass=computer)(name=x\29\28cn=*))`},
	} {
		got := computerFilter(tc.name, tc.disabled)
		if got != tc.want {
			t.Errorf("computerFilter(%q, %v) = %q, want %q", tc.name, tc.disabled, got, tc.want)
		}
		if _, err := ldap.CompileFilter(got); err != nil {
			t.Errorf("computerFilter(%q) = %q does not compile: %v", tc.name, got, err)
		}
	}
}

// checkNameFilterStructure compiles the filter for pattern and checks that
// its structure is exactly what computerFilter promises, whatever the
// pattern: an AND of objectClass=computer, and one item on "name" whose
// literal parts, once decoded, are the pattern's parts.
func checkNameFilterStructure(t *testing.T, pattern string) {
	t.Helper()
	f := computerFilter(pattern, true)
	p, err := ldap.CompileFilter(f)
	if err != nil {
		t.Fatalf("pattern %q: filter %q does not compile: %v", pattern, f, err)
	}
	if p.Tag != ldap.FilterAnd {
		t.Fatalf("pattern %q: top of %q is tag %d, want AND", pattern, f, p.Tag)
	}
	if len(p.Children) != 2 {
		t.Fatalf("pattern %q: filter %q has %d AND items, want 2", pattern, f, len(p.Children))
	}
	oc := p.Children[0]
	if oc.Tag != ldap.FilterEqualityMatch || oc.Children[0].Value != "objectClass" || oc.Children[1].Value != "computer" {
		t.Fatalf("pattern %q: first item of %q changed", pattern, f)
	}
	item := p.Children[1]
	if strings.Trim(pattern, "*") == "" {
		// Only stars: a presence filter.
		if item.Tag != ldap.FilterPresent || item.Data.String() != "name" {
			t.Fatalf("pattern %q: item of %q is not (name=*)", pattern, f)
		}
		return
	}
	if item.Tag != ldap.FilterSubstrings {
		t.Fatalf("pattern %q: item of %q is tag %d, want substrings", pattern, f, item.Tag)
	}
	if item.Children[0].Value != "name" {
		t.Fatalf("pattern %q: substring attribute is %v, want name", pattern, item.Children[0].Value)
	}
	// Rebuild the pattern from the decoded parts and compare with the input
	// after normalising runs of '*' (and the implicit stars of a substring).
	var parts []string
	var initial, final bool
	for _, c := range item.Children[1].Children {
		switch c.Tag {
		case ldap.FilterSubstringsInitial:
			initial = true
		case ldap.FilterSubstringsFinal:
			final = true
		}
		parts = append(parts, c.Data.String())
	}
	got := strings.Join(parts, "*")
	if !initial {
		got = "*" + got
	}
	if !final {
		got += "*"
	}
	want := pattern
	if !strings.Contains(want, "*") {
		want = "*" + want + "*"
	}
	for strings.Contains(want, "**") {
		want = strings.ReplaceAll(want, "**", "*")
	}
	if got != want {
		t.Fatalf("pattern %q: filter %q decodes to %q, want %q", pattern, f, got, want)
	}
}

func TestNameFilterHostile(t *testing.T) {
	for _, p := range []string{
		"*)(objectClass=*",
		"x)(|(userAccountControl=*))(cn=",
		`\2a`,
		"\x00",
		"*)(!(a=b))(&(x=*",
		"a\\",
		"))))))((((((",
		"ws*)(name=*",
		"é*ü",
	} {
		checkNameFilterStructure(t, p)
	}
}

func FuzzNameFilter(f *testing.F) {
	for _, s := range []string{"ws", "WS-*", "*)(cn=*", `\`, "(", "a*b*c", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		if pattern == "" {
			return
		}
		checkNameFilterStructure(t, pattern)
	})
}

// The go-ldap filter decoder sets Data for presence filters; make sure
// the assumption the structure check relies on holds.
func TestPresenceFilterData(t *testing.T) {
	p, err := ldap.CompileFilter("(name=*)")
	if err != nil {
		t.Fatal(err)
	}
	if p.Tag != ber.Tag(ldap.FilterPresent) || p.Data.String() != "name" {
		t.Fatalf("presence filter decodes as tag %d data %q", p.Tag, p.Data.String())
	}
}
