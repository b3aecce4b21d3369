package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/cliutil"
)

// The table shows each computer once. Two renderers implement that:
//
//   - tablePrinter, when stdout is not a terminal (a pipe, a file): a host's
//     row is printed once, when every running source has answered for it
//     (it saw the host, or it finished without seeing it), or at the end.
//   - liveTable, when stdout is a terminal: a host's row is printed when
//     the host is found and redrawn in place (ANSI cursor movement) when
//     its facts change.
//
// The NDJSON printer is neither: it keeps one object per update.

// printer turns view events into output.
type printer interface {
	print(e discovery.ViewEvent) error
	// sourceDone says that a source has returned: it will add nothing.
	sourceDone(name string) error
	// lines says that n lines were written to the terminal by someone
	// else (stderr notes, the echo of a typed filter).
	lines(n int)
	// untracked says that lines of unknown number went to the terminal:
	// rows already drawn can no longer be found.
	untracked()
	flush() error
}

// Fixed column widths keep a growing table aligned without buffering it.
const rowFormat = "%-15s  %-15s  %-15s  %-17s  %-12s  %s"

func header() string {
	return fmt.Sprintf(rowFormat, "ADDRESS", "NAME", "DOMAIN", "MAC", "SOURCES", "ROLES")
}

// formatRow is a host's row, without a newline. Names, domains, roles and
// sources may come from the network: no control character reaches the
// terminal (cliutil.Safe).
func formatRow(h discovery.Host) string {
	var roles []string
	for _, r := range h.Roles {
		roles = append(roles, string(r))
	}
	mac := "-"
	if len(h.MAC) > 0 {
		mac = h.MAC.String()
	}
	var srcs []string
	for _, s := range h.Sources {
		srcs = append(srcs, string(s))
	}
	return strings.TrimRight(fmt.Sprintf(rowFormat, addrList(h), orDash(cliutil.Safe(h.Name)), orDash(cliutil.Safe(h.Domain)), mac,
		orDash(cliutil.Safe(strings.Join(srcs, ","))), orDash(cliutil.Safe(strings.Join(roles, ",")))), " ")
}

// removedRow is the row of a host that left the list.
func removedRow(h discovery.Host) string {
	return fmt.Sprintf("%-15s  %-15s  (removed from the list)", addrList(h), orDash(cliutil.Safe(h.Name)))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func addrList(h discovery.Host) string {
	var addrs []string
	for _, a := range h.Addrs {
		addrs = append(addrs, a.String())
	}
	return orDash(strings.Join(addrs, ","))
}

// tablePrinter is the table for a pipe or a file: each host's row is
// printed once, with the facts of every source, when all the running
// sources have answered for it, or at the end (flush). A host that leaves
// the list after its row was printed gets a "(removed from the list)"
// line, and its row again if it comes back.
type tablePrinter struct {
	w       io.Writer
	running map[string]bool // sources that have not returned
	pending map[discovery.HostID]discovery.Host
	printed map[discovery.HostID]bool
	header  bool
}

// newTablePrinter returns a table for w that waits for the named sources.
// With no sources, every host is printed as soon as it is shown.
func newTablePrinter(w io.Writer, sources ...string) *tablePrinter {
	p := &tablePrinter{w: w, running: make(map[string]bool), pending: make(map[discovery.HostID]discovery.Host),
		printed: make(map[discovery.HostID]bool)}
	for _, s := range sources {
		p.running[s] = true
	}
	return p
}

// ready reports whether every running source has answered for h. The
// directory has answered once it listed the host and, when the host has a
// DNS name, once the name resolved (or the directory finished).
func (p *tablePrinter) ready(h discovery.Host) bool {
	for s := range p.running {
		if !slices.Contains(h.Sources, discovery.Source(s)) {
			return false
		}
		if s == string(discovery.SourceLDAP) && h.DNSName != "" && len(h.TrustedAddrs) == 0 {
			return false // its address lookup may still answer
		}
	}
	return true
}

func (p *tablePrinter) print(e discovery.ViewEvent) error {
	switch e.Kind {
	case discovery.Show:
		if p.printed[e.ID] {
			return nil // shown once; later facts are for the terminal and NDJSON
		}
		p.pending[e.ID] = e.Host
		if p.ready(e.Host) {
			return p.emit(e.ID)
		}
	case discovery.Hide:
		// Merged into another host, or filtered out by a new filter.
		delete(p.pending, e.ID)
		if p.printed[e.ID] {
			delete(p.printed, e.ID)
			return p.writeLine(removedRow(e.Host))
		}
	}
	return nil
}

func (p *tablePrinter) emit(id discovery.HostID) error {
	h := p.pending[id]
	delete(p.pending, id)
	p.printed[id] = true
	return p.writeLine(formatRow(h))
}

func (p *tablePrinter) writeLine(s string) error {
	if !p.header {
		p.header = true
		if _, err := io.WriteString(p.w, header()+"\n"); err != nil {
			return err
		}
	}
	_, err := io.WriteString(p.w, s+"\n")
	return err
}

func (p *tablePrinter) sourceDone(name string) error {
	delete(p.running, name)
	return p.emitReady(false)
}

// emitReady prints the pending hosts that are ready (all of them when
// all is set), in ID order: the order they were found.
func (p *tablePrinter) emitReady(all bool) error {
	ids := make([]discovery.HostID, 0, len(p.pending))
	for id, h := range p.pending {
		if all || p.ready(h) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := p.emit(id); err != nil {
			return err
		}
	}
	return nil
}

func (p *tablePrinter) lines(int)  {}
func (p *tablePrinter) untracked() {}

func (p *tablePrinter) flush() error { return p.emitReady(true) }

// liveTable is the table on a terminal. A host's row is drawn when it is
// found and redrawn in place when what it shows changes: the cursor moves
// up to the row (ESC [ n A), the line is cleared and rewritten, and the
// cursor moves back down (ESC [ n B). Rows are cut to the terminal's width
// so that none wraps, which would shift every row above it.
//
// It counts the lines below each row: its own, and those others report
// with lines. A row that has scrolled out of the window, or that untracked
// made unreachable, is drawn again at the bottom instead. It writes no
// other escape sequence, and it never clears the screen.
type liveTable struct {
	w io.Writer
	// size returns the terminal's width and height; zero or negative
	// values mean unknown (no cut, no scroll check).
	size func() (width, height int)

	line   int                         // lines written so far; the cursor is at the start of line `line`
	at     map[discovery.HostID]int    // the line a host's row is on, when reachable
	rows   map[discovery.HostID]string // what each host's row shows
	header bool
}

func newLiveTable(w io.Writer, size func() (int, int)) *liveTable {
	if size == nil {
		size = func() (int, int) { return 0, 0 }
	}
	return &liveTable{w: w, size: size, at: make(map[discovery.HostID]int), rows: make(map[discovery.HostID]string)}
}

func (t *liveTable) print(e discovery.ViewEvent) error {
	var row string
	switch e.Kind {
	case discovery.Show:
		row = formatRow(e.Host)
	case discovery.Hide:
		if _, ok := t.rows[e.ID]; !ok {
			return nil // never drawn
		}
		row = removedRow(e.Host)
	default:
		return nil
	}
	width, height := t.size()
	if width > 1 {
		row = cut(row, width-1)
	}
	old, drawn := t.rows[e.ID]
	if drawn && old == row {
		return nil
	}
	// A hidden host keeps its entry, so that a later Show redraws the
	// same line.
	t.rows[e.ID] = row
	if at, ok := t.at[e.ID]; ok && drawn {
		up := t.line - at
		// The row is reachable when it is still in the window: the
		// cursor's line is the window's last.
		if height <= 0 || up < height {
			_, err := fmt.Fprintf(t.w, "\033[%dA\r\033[2K%s\033[%dB\r", up, row, up)
			return err
		}
	}
	if !t.header {
		t.header = true
		h := header()
		if width > 1 {
			h = cut(h, width-1)
		}
		if _, err := io.WriteString(t.w, h+"\n"); err != nil {
			return err
		}
		t.line++
	}
	if _, err := io.WriteString(t.w, row+"\n"); err != nil {
		return err
	}
	t.at[e.ID] = t.line
	t.line++
	return nil
}

func (t *liveTable) sourceDone(string) error { return nil }
func (t *liveTable) lines(n int)             { t.line += n }
func (t *liveTable) untracked()              { clear(t.at) }
func (t *liveTable) flush() error            { return nil }

// cut shortens s to at most n terminal columns. It counts two columns
// for every non-ASCII character (East Asian characters take two; names
// from the network may hold them): a row may end a little early, but it
// never wraps, which would shift the rows above it and make a redraw land
// on another host's line.
func cut(s string, n int) string {
	w := 0
	for i, r := range s {
		w += runeColumns(r)
		if w > n {
			return s[:i]
		}
	}
	return s
}

// columns is the most terminal columns s can take (see cut).
func columns(s string) int {
	w := 0
	for _, r := range s {
		w += runeColumns(r)
	}
	return w
}

func runeColumns(r rune) int {
	if r < utf8.RuneSelf {
		return 1
	}
	return 2
}
