package cliutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Safe returns s with every character that a terminal could act on
// replaced by a visible escape: C0 and C1 control characters (ESC, CR, BS,
// BEL, ...) and DEL as \xNN, the Unicode line and paragraph separators and
// bidirectional overrides and isolates as \uNNNN, and each byte of invalid
// UTF-8 as \xNN. Other text, non-ASCII letters included, is unchanged. It
// does not quote, trim or shorten.
func Safe(s string) string {
	i := 0
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && w == 1) || unsafeRune(r) {
			break
		}
		i += w
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += w
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r): // C0, DEL, C1
		return true
	case r == 0x2028 || r == 0x2029: // line and paragraph separators
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c: // bidi controls
		return true
	}
	return false
}

// Secrets are the environment variables ChildEnv leaves out.
var Secrets = []string{"LANCONNECT_PASSWORD"}

// ChildEnv returns environ (as os.Environ gives it) without the variables
// named in Secrets, followed by extra ("KEY=value"). It does not change
// this process's environment.
func ChildEnv(environ []string, extra ...string) []string {
	out := make([]string, 0, len(environ)+len(extra))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		secret := false
		for _, s := range Secrets {
			if k == s {
				secret = true
				break
			}
		}
		if !secret {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// BuildApplet builds examples/applet with the go tool found on PATH into
// out, for goos and goarch, without cgo. The go tool runs with ChildEnv:
// it never sees the password. The error carries the tool's output.
func BuildApplet(ctx context.Context, out, goos, goarch string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/lanconnect/lanconnect/examples/applet")
	cmd.Env = ChildEnv(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}
