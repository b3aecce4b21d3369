package winemu

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrPathNotMapped is returned for a Windows path that does not lie under
// C:\Windows (the only tree the emulator maps), or that tries to climb out
// of it.
var ErrPathNotMapped = errors.New("winemu: path is not under C:\\Windows")

// ErrBadCommandLine is returned for an empty or unbalanced service command
// line.
var ErrBadCommandLine = errors.New("winemu: malformed command line")

// MapPath maps a Windows path under C:\Windows to the corresponding path
// under root, resolving each component case-insensitively against what
// exists on disk (components that do not exist are kept as written).
//
// It accepts the forms a service binary path takes: C:\Windows\X\Y.exe,
// %SystemRoot%\X and %windir%\X, \SystemRoot\X, the \\?\ and \??\
// prefixes, and forward slashes. It does not parse arguments or quotes
// (see ParseCommandLine) and never returns a path outside root.
func MapPath(root, winPath string) (string, error) {
	p := strings.ReplaceAll(strings.TrimSpace(winPath), "/", `\`)
	for _, pre := range []string{`\\?\`, `\??\`} {
		p = strings.TrimPrefix(p, pre)
	}
	lower := strings.ToLower(p)
	for _, v := range []string{`%systemroot%`, `%windir%`, `\systemroot`} {
		if strings.HasPrefix(lower, v) && (len(p) == len(v) || p[len(v)] == '\\') {
			p = `C:\Windows` + p[len(v):]
			lower = strings.ToLower(p)
			break
		}
	}
	const base = `c:\windows`
	if !strings.HasPrefix(lower, base) || (len(p) > len(base) && p[len(base)] != '\\') {
		return "", fmt.Errorf("%w: %q", ErrPathNotMapped, winPath)
	}
	out := root
	for _, comp := range strings.Split(p[len(base):], `\`) {
		switch comp {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: %q climbs out", ErrPathNotMapped, winPath)
		}
		out = filepath.Join(out, resolveComponent(out, comp))
	}
	return out, nil
}

// resolveComponent returns the entry of dir whose name equals comp
// case-insensitively, preferring an exact match; comp itself otherwise.
func resolveComponent(dir, comp string) string {
	if _, err := os.Lstat(filepath.Join(dir, comp)); err == nil {
		return comp
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return comp
	}
	for _, e := range entries {
		if strings.EqualFold(e.Name(), comp) {
			return e.Name()
		}
	}
	return comp
}

// ParseCommandLine splits a service's binary path into the executable and
// its arguments, following the Windows rules: a quoted first token is the
// executable; otherwise the executable ends after the first ".exe"
// followed by a space, or at the first space. Arguments follow the
// CommandLineToArgvW quoting rules (backslashes escape only a following
// quote).
func ParseCommandLine(cmdline string) (string, []string, error) {
	s := strings.TrimSpace(cmdline)
	if s == "" {
		return "", nil, fmt.Errorf("%w: empty", ErrBadCommandLine)
	}
	var exe, rest string
	if s[0] == '"' {
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return "", nil, fmt.Errorf("%w: unbalanced quote", ErrBadCommandLine)
		}
		exe, rest = s[1:1+end], s[2+end:]
	} else {
		lower := strings.ToLower(s)
		if i := strings.Index(lower, ".exe "); i >= 0 {
			exe, rest = s[:i+4], s[i+4:]
		} else if i := strings.IndexAny(s, " \t"); i >= 0 {
			exe, rest = s[:i], s[i:]
		} else {
			exe = s
		}
	}
	if exe == "" {
		return "", nil, fmt.Errorf("%w: empty executable", ErrBadCommandLine)
	}
	args, err := splitArgs(rest)
	if err != nil {
		return "", nil, err
	}
	return exe, args, nil
}

// splitArgs splits arguments with the CommandLineToArgvW rules.
func splitArgs(s string) ([]string, error) {
	var (
		args    []string
		cur     strings.Builder
		inQuote bool
		have    bool
	)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\':
			n := 0
			for i < len(s) && s[i] == '\\' {
				n++
				i++
			}
			if i < len(s) && s[i] == '"' {
				cur.WriteString(strings.Repeat(`\`, n/2))
				if n%2 == 1 {
					cur.WriteByte('"')
				} else {
					inQuote = !inQuote
				}
				have = true
			} else {
				cur.WriteString(strings.Repeat(`\`, n))
				have = true
				i--
			}
		case ch == '"':
			if inQuote && i+1 < len(s) && s[i+1] == '"' {
				cur.WriteByte('"')
				i++
			} else {
				inQuote = !inQuote
			}
			have = true
		case (ch == ' ' || ch == '\t') && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("%w: unbalanced quote in arguments", ErrBadCommandLine)
	}
	if have {
		args = append(args, cur.String())
	}
	return args, nil
}
