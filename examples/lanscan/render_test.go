package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lanconnect/lanconnect/discovery"
)

// fakeTerm is a terminal window of fixed size that understands what
// liveTable and the progress line write: printable text, \r, \n, ESC [ n A
// (up), ESC [ n B (down), ESC [ 2 K and ESC [ K (clear line). Lines that
// scroll out of the window are kept in scrollback. Any other control
// character or escape sequence fails the test.
type fakeTerm struct {
	t             *testing.T
	width, height int
	scrollback    []string
	screen        [][]rune // height lines
	row, col      int
	pending       []byte // an incomplete escape sequence
}

func newFakeTerm(t *testing.T, width, height int) *fakeTerm {
	f := &fakeTerm{t: t, width: width, height: height, screen: make([][]rune, height)}
	return f
}

func (f *fakeTerm) size() (int, int) { return f.width, f.height }

func (f *fakeTerm) Write(p []byte) (int, error) {
	b := append(f.pending, p...)
	f.pending = nil
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\r':
			f.col = 0
		case c == '\n':
			f.col = 0
			f.down(1, true)
		case c == 0x1b:
			j := i + 1
			if j >= len(b) {
				f.pending = append([]byte(nil), b[i:]...)
				return len(p), nil
			}
			if b[j] != '[' {
				f.t.Fatalf("escape %q not understood", b[i:j+1])
			}
			k := j + 1
			for k < len(b) && b[k] >= '0' && b[k] <= '9' {
				k++
			}
			if k >= len(b) {
				f.pending = append([]byte(nil), b[i:]...)
				return len(p), nil
			}
			n := 1
			if k > j+1 {
				n, _ = strconv.Atoi(string(b[j+1 : k]))
			}
			switch b[k] {
			case 'A':
				f.row = max(0, f.row-n)
			case 'B':
				f.down(n, false)
			case 'K':
				if n == 2 {
					f.screen[f.row] = nil
				} else if f.col < len(f.screen[f.row]) {
					f.screen[f.row] = f.screen[f.row][:f.col]
				}
			default:
				f.t.Fatalf("escape %q not understood", b[i:k+1])
			}
			i = k
		case c < 0x20 || c == 0x7f:
			f.t.Fatalf("control character %q written to the terminal", c)
		default:
			// A character; non-ASCII ones take two columns here, as East
			// Asian characters do (the second holds a 0 filler).
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && !utf8.FullRune(b[i:]) {
				f.pending = append([]byte(nil), b[i:]...)
				return len(p), nil
			}
			cols := 1
			if r >= utf8.RuneSelf {
				cols = 2
			}
			if f.col+cols > f.width {
				f.col = 0
				f.down(1, true) // wraps, as a terminal does
			}
			line := f.screen[f.row]
			for len(line) < f.col+cols {
				line = append(line, ' ')
			}
			line[f.col] = r
			if cols == 2 {
				line[f.col+1] = 0
			}
			f.screen[f.row] = line
			f.col += cols
			i += size - 1
		}
	}
	return len(p), nil
}

// down moves the cursor n lines down; at the bottom, a newline scrolls
// the window and ESC [ B stops.
func (f *fakeTerm) down(n int, scroll bool) {
	for range n {
		if f.row < f.height-1 {
			f.row++
			continue
		}
		if !scroll {
			return
		}
		f.scrollback = append(f.scrollback, string(f.screen[0]))
		copy(f.screen, f.screen[1:])
		f.screen[f.height-1] = nil
	}
}

// lines returns scrollback and window, without trailing spaces and
// without the empty lines at the end.
func (f *fakeTerm) lines() []string {
	var out []string
	for _, l := range f.scrollback {
		out = append(out, strings.TrimRight(strings.ReplaceAll(l, "\x00", ""), " "))
	}
	for _, l := range f.screen {
		out = append(out, strings.TrimRight(strings.ReplaceAll(string(l), "\x00", ""), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

func labHost(last byte, name string, srcs ...discovery.Source) discovery.Host {
	return discovery.Host{Name: name, Domain: "LABGROUP", Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, last})}, Sources: srcs}
}

// rowsNaming returns the lines that contain name as a word.
func rowsNaming(lines []string, name string) []string {
	var out []string
	for _, l := range lines {
		for _, f := range strings.Fields(l) {
			if f == name {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// TestLiveTableRedrawsInPlace: on a terminal, a host whose facts change
// keeps one row, redrawn in place, while other rows and stderr lines stay
// where they are.
func TestLiveTableRedrawsInPlace(t *testing.T) {
	ft := newFakeTerm(t, 120, 24)
	lt := newLiveTable(ft, ft.size)
	show := func(id discovery.HostID, h discovery.Host) {
		t.Helper()
		if err := lt.print(discovery.ViewEvent{Kind: discovery.Show, ID: id, Host: h}); err != nil {
			t.Fatal(err)
		}
	}
	show(1, labHost(10, "HERON", discovery.SourceNetBIOS))
	show(2, labHost(11, "EGRET", discovery.SourceNetBIOS))
	// A stderr note between rows, as run writes one.
	fmt.Fprintln(ft, "lanscan: a note")
	lt.lines(1)
	show(3, labHost(12, "CRANE", discovery.SourceNetBIOS))
	// SMB facts arrive for the first two, the second leaves the list.
	show(1, labHost(10, "HERON", discovery.SourceNetBIOS, discovery.SourceSMB))
	show(2, labHost(11, "EGRET", discovery.SourceNetBIOS, discovery.SourceSMB))
	show(1, labHost(10, "HERON", discovery.SourceNetBIOS, discovery.SourceSMB)) // unchanged: nothing drawn
	if err := lt.print(discovery.ViewEvent{Kind: discovery.Hide, ID: 3, Host: labHost(12, "CRANE", discovery.SourceNetBIOS)}); err != nil {
		t.Fatal(err)
	}
	got := ft.lines()
	want := []string{
		strings.TrimRight(header(), " "),
		formatRow(labHost(10, "HERON", discovery.SourceNetBIOS, discovery.SourceSMB)),
		formatRow(labHost(11, "EGRET", discovery.SourceNetBIOS, discovery.SourceSMB)),
		"lanscan: a note",
		removedRow(labHost(12, "CRANE")),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("screen:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ft.row != len(want) || ft.col != 0 {
		t.Fatalf("cursor at %d,%d, want the start of line %d", ft.row, ft.col, len(want))
	}
}

// TestLiveTableScrolledAndNarrow: rows are cut to the window's width, so
// none wraps; a row that has scrolled out of the window, or that an
// untracked line (the echo of a typed filter) made unreachable, is drawn
// again at the bottom instead of over another line.
func TestLiveTableScrolledAndNarrow(t *testing.T) {
	ft := newFakeTerm(t, 90, 5)
	lt := newLiveTable(ft, ft.size)
	for i := range 8 {
		h := labHost(byte(10+i), fmt.Sprintf("PC%02d", i), discovery.SourceNetBIOS)
		h.Roles = []discovery.Role{"workstation", "messenger", "file-server", "browser-election"}
		if err := lt.print(discovery.ViewEvent{Kind: discovery.Show, ID: discovery.HostID(i + 1), Host: h}); err != nil {
			t.Fatal(err)
		}
	}
	// PC00 has scrolled out of the 5-line window; PC06 is in it.
	for _, id := range []int{0, 6} {
		h := labHost(byte(10+id), fmt.Sprintf("PC%02d", id), discovery.SourceNetBIOS, discovery.SourceSMB)
		if err := lt.print(discovery.ViewEvent{Kind: discovery.Show, ID: discovery.HostID(id + 1), Host: h}); err != nil {
			t.Fatal(err)
		}
	}
	lt.untracked()
	fmt.Fprintln(ft, "pc07")
	h := labHost(17, "PC07", discovery.SourceNetBIOS, discovery.SourceSMB)
	if err := lt.print(discovery.ViewEvent{Kind: discovery.Show, ID: 8, Host: h}); err != nil {
		t.Fatal(err)
	}
	// A host on the LAN with a long name of wide characters: its row is
	// cut short enough not to wrap even if each takes two columns.
	wide := labHost(99, strings.Repeat("鷺", 60), discovery.SourceSMB)
	if err := lt.print(discovery.ViewEvent{Kind: discovery.Show, ID: 9, Host: wide}); err != nil {
		t.Fatal(err)
	}
	got := ft.lines()
	for _, l := range got {
		if columns(l) >= 90 {
			t.Errorf("line of %d columns in a 90-column window: %q", len(l), l)
		}
	}
	if len(got) != 1+8+1+1+1+1 {
		t.Fatalf("%d lines:\n%s", len(got), strings.Join(got, "\n"))
	}
	if r := rowsNaming(got, "PC06"); len(r) != 1 || !strings.Contains(r[0], "netbios,smb") {
		t.Errorf("PC06 rows %q: want one, redrawn in place", r)
	}
	if r := rowsNaming(got, "PC00"); len(r) != 2 || !strings.Contains(r[1], "netbios,smb") {
		t.Errorf("PC00 rows %q: want the scrolled-out row and a new one below", r)
	}
	if r := rowsNaming(got, "PC07"); len(r) != 2 || strings.Contains(r[0], "smb") || !strings.Contains(r[1], "netbios,smb") {
		t.Errorf("PC07 rows %q: want the old row untouched and a new one below the echo", r)
	}
}

// TestTablePrinterOnce: piped, a host's row is printed once, when every
// running source has answered for it (or finished), or at the end.
func TestTablePrinterOnce(t *testing.T) {
	var out bytes.Buffer
	p := newTablePrinter(&out, "netbios", "smb", "ldap")
	step := func(what string, f func() error) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	show := func(id discovery.HostID, h discovery.Host) func() error {
		return func() error { return p.print(discovery.ViewEvent{Kind: discovery.Show, ID: id, Host: h}) }
	}
	heron := labHost(10, "HERON", discovery.SourceNetBIOS)
	step("heron netbios", show(1, heron))
	step("egret netbios", show(2, labHost(11, "EGRET", discovery.SourceNetBIOS)))
	if out.Len() != 0 {
		t.Fatalf("printed before smb and ldap answered:\n%s", out.String())
	}
	// The directory lists HERON with a DNS name; its lookup is pending.
	heron.Sources = []discovery.Source{discovery.SourceNetBIOS, discovery.SourceSMB, discovery.SourceLDAP}
	heron.DNSName = "heron.lab.test"
	step("heron ldap", show(1, heron))
	if out.Len() != 0 {
		t.Fatalf("printed before HERON's address lookup:\n%s", out.String())
	}
	heron.TrustedAddrs = heron.Addrs
	heron.OS = "Windows 11 23H2"
	step("heron resolved", show(1, heron))
	if strings.Count(out.String(), "\n") != 2 || !strings.Contains(out.String(), "netbios,smb,ldap") {
		t.Fatalf("want the header and HERON with every source:\n%s", out.String())
	}
	step("heron again", show(1, heron))
	step("ldap done", func() error { return p.sourceDone("ldap") })
	step("smb done", func() error { return p.sourceDone("smb") })
	// EGRET never answered SMB or LDAP: printed once both are done.
	if r := rowsNaming(strings.Split(out.String(), "\n"), "EGRET"); len(r) != 1 {
		t.Fatalf("EGRET rows %q after smb and ldap finished:\n%s", r, out.String())
	}
	step("crane", show(3, labHost(12, "CRANE", discovery.SourceNetBIOS, discovery.SourceSMB)))
	step("crane hidden", func() error {
		return p.print(discovery.ViewEvent{Kind: discovery.Hide, ID: 3, Host: labHost(12, "CRANE")})
	})
	step("flush", p.flush)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || len(rowsNaming(lines, "HERON")) != 1 || len(rowsNaming(lines, "CRANE")) != 2 ||
		!strings.HasSuffix(lines[4], "(removed from the list)") {
		t.Fatalf("table:\n%s", out.String())
	}
	// A host still waiting at the end is printed by flush.
	out.Reset()
	p = newTablePrinter(&out, "netbios", "smb")
	step("late", show(1, labHost(20, "LATE", discovery.SourceNetBIOS)))
	step("flush", p.flush)
	if r := rowsNaming(strings.Split(out.String(), "\n"), "LATE"); len(r) != 1 {
		t.Fatalf("flush printed %q", out.String())
	}
}

// TestRunOnTerminal: lanscan with stdout and stderr on one terminal: the
// progress line and the table share it, and at the end the screen holds
// the header and one row per host, the progress line cleared.
func TestRunOnTerminal(t *testing.T) {
	_, cidr := startFakes(t, 3)
	ft := newFakeTerm(t, 160, 40)
	tty := terminal{stdout: true, stderr: true, size: ft.size}
	code := runTerm(context.Background(), []string{"-rate", "500", "-timeout", "300ms", cidr}, strings.NewReader(""), ft, ft, tty)
	if code != 0 {
		t.Fatalf("exit %d; screen:\n%s", code, strings.Join(ft.lines(), "\n"))
	}
	got := ft.lines()
	if len(got) != 4 || !strings.HasPrefix(got[0], "ADDRESS") {
		t.Fatalf("screen:\n%s", strings.Join(got, "\n"))
	}
	for i := range 3 {
		if r := rowsNaming(got, fmt.Sprintf("PC%02d", i)); len(r) != 1 {
			t.Errorf("PC%02d rows %q", i, r)
		}
	}
	if ft.col != 0 || ft.row != 4 {
		t.Errorf("cursor at %d,%d, want the start of line 4", ft.row, ft.col)
	}
}
