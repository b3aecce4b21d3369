package adauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, user, domain string
		local            bool
	}{
		{`CORP\alice`, "alice", "CORP", false},
		{`alice@corp.example`, "alice", "corp.example", false},
		{`.\admin`, "admin", ".", true},
		{`HERON-PC\admin`, "admin", "HERON-PC", false},
		{`bob`, "bob", "", false},
		{`  CORP\alice  `, "alice", "CORP", false},
	} {
		c, err := Parse(tc.in, "pw")
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if c.User != tc.user || c.Domain != tc.domain || c.IsLocal() != tc.local {
			t.Errorf("Parse(%q) = %q/%q local=%v, want %q/%q local=%v", tc.in, c.User, c.Domain, c.IsLocal(), tc.user, tc.domain, tc.local)
		}
		if p, ok := c.Password(); !ok || p != "pw" {
			t.Errorf("Parse(%q) lost the password", tc.in)
		}
	}
}

func TestParseBad(t *testing.T) {
	for _, in := range []string{"", `\alice`, `CORP\`, `alice@`, `@corp`, `CORP\a/b`, `a*b`} {
		_, err := Parse(in, "pw")
		if !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Parse(%q) = %v, want ErrBadCredentials", in, err)
		}
	}
}

func TestParseWithHash(t *testing.T) {
	const h = "8846f7eaee8fb117ad06bdd830b7586c"
	c, err := ParseWithHash(`CORP\alice`, h)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", c.NTHash()); got != h {
		t.Fatalf("NTHash = %s", got)
	}
	c.NTHash()[0] = 0 // a copy: must not change c
	if fmt.Sprintf("%x", c.NTHash()) != h {
		t.Fatal("NTHash returned the internal slice")
	}
	for _, bad := range []string{"", "abc", h + "00", strings.Replace(h, "8", "z", 1)} {
		_, err := ParseWithHash(`CORP\alice`, bad)
		if !errors.Is(err, ErrBadCredentials) {
			t.Errorf("ParseWithHash(%q) = %v", bad, err)
		}
		if bad != "" && err != nil && strings.Contains(err.Error(), bad) {
			t.Errorf("error echoes the hash: %v", err)
		}
	}
}

// TestNeverPrintsSecret proves that no ordinary way of printing, logging or
// serialising Credentials shows the secret.
func TestNeverPrintsSecret(t *testing.T) {
	const secret = "S3cr3t-Pa55w0rd!"
	const hash = "8846f7eaee8fb117ad06bdd830b7586c"
	pc, _ := Parse(`CORP\alice`, secret)
	hc, _ := ParseWithHash(`CORP\alice`, hash)
	for _, c := range []Credentials{pc, hc} {
		var outs []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
			outs = append(outs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c))
		}
		outs = append(outs, fmt.Sprint(c), fmt.Sprintln(c), c.String(), c.GoString())
		outs = append(outs, fmt.Sprintf("%+v", struct{ C Credentials }{c}))
		var buf bytes.Buffer
		for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
			slog.New(h).Info("login", "creds", c, "ptr", &c)
		}
		outs = append(outs, buf.String())
		j, err := json.Marshal(map[string]any{"c": c})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(j))
		for _, o := range outs {
			if strings.Contains(o, secret) || strings.Contains(strings.ToLower(o), hash) || strings.Contains(o, fmt.Sprintf("%x", secret)) || strings.Contains(strings.ToLower(o), fmt.Sprintf("%x", secret)) {
				t.Fatalf("secret leaked in %q", o)
			}
			if !strings.Contains(o, "alice") {
				t.Errorf("account missing from %q", o)
			}
		}
	}
}

func TestZeroAndWithPassword(t *testing.T) {
	var z Credentials
	if !z.IsZero() || z.HasSecret() || z.String() != "anonymous" {
		t.Fatalf("zero value: %v", z)
	}
	hc, _ := ParseWithHash(`CORP\alice`, "8846f7eaee8fb117ad06bdd830b7586c")
	pc := hc.WithPassword("x")
	if pc.NTHash() != nil {
		t.Fatal("WithPassword kept the hash")
	}
	if hc.NTHash() == nil {
		t.Fatal("WithPassword changed the original")
	}
}
