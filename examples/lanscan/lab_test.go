package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestLabDefaultTargets runs lanscan with no TARGET inside the lab's client
// namespace, whose only interface is on the lab bridge: it must sweep the
// lab subnet, broadcast there, and list every target.
func TestLabDefaultTargets(t *testing.T) {
	l := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {}, {NoSMB: true}}, Client: true})
	bin := filepath.Join(t.TempDir(), "lanscan")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := l.Client.Command(ctx, bin, "-json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("lanscan: %v\n%s", err, stderr.String())
	}
	t.Logf("lanscan in the client namespace took %v; stderr %q", time.Since(start), stderr.String())
	found := map[string]hostJSON{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var h hostJSON
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		found[strings.ToUpper(h.Name)] = h
	}
	if len(found) != len(l.Targets) {
		t.Errorf("found %d hosts, want %d: %v", len(found), len(l.Targets), found)
	}
	for _, tg := range l.Targets {
		h, ok := found[strings.ToUpper(tg.NetBIOSName)]
		if !ok {
			t.Errorf("target %s not listed", tg.NetBIOSName)
			continue
		}
		if !strings.EqualFold(h.Domain, l.Workgroup) || len(h.Addrs) != 1 || h.Addrs[0] != tg.Addr.String() {
			t.Errorf("target %s listed as %+v", tg.NetBIOSName, h)
		}
	}

	// The table, piped: each computer once, with the facts of both
	// sources (NetBIOS names, SMB's) merged into its one row.
	cmd = l.Client.Command(ctx, bin)
	stdout.Reset()
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lanscan (table): %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 1+len(l.Targets) || !strings.HasPrefix(lines[0], "ADDRESS") {
		t.Fatalf("table: want a header and %d rows:\n%s", len(l.Targets), stdout.String())
	}
	checkRows(t, lines, l)

	// On a terminal (a pseudo-terminal of 200x50 from script(1)): each
	// computer has one row on the screen, redrawn in place as SMB facts
	// arrive. The fake terminal replays what lanscan wrote to it.
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) not installed")
	}
	cmd = l.Client.Command(ctx, "script", "-qfec", "stty cols 200 rows 50; exec "+bin, "/dev/null")
	stdout.Reset()
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lanscan on a terminal: %v\n%s", err, stderr.String())
	}
	ft := newFakeTerm(t, 200, 50)
	ft.Write(stdout.Bytes())
	screen := ft.lines()
	t.Logf("%d bytes written to the terminal, screen:\n%s", stdout.Len(), strings.Join(screen, "\n"))
	if len(screen) != 1+len(l.Targets) || !strings.HasPrefix(screen[0], "ADDRESS") {
		t.Fatalf("screen: want a header and %d rows", len(l.Targets))
	}
	checkRows(t, screen, l)
}

// checkRows checks that lines show each of the lab's targets on exactly
// one row, with its address, its roles and the sources that answer it.
func checkRows(t *testing.T, lines []string, l *testlab.Lab) {
	t.Helper()
	for _, tg := range l.Targets {
		rows := rowsNaming(lines, strings.ToUpper(tg.NetBIOSName))
		if len(rows) != 1 {
			t.Errorf("target %s: %d rows, want 1:\n%s", tg.NetBIOSName, len(rows), strings.Join(lines, "\n"))
			continue
		}
		f := strings.Fields(rows[0])
		want := "netbios,smb"
		if tg.NoSMB {
			want = "netbios"
		}
		if f[0] != tg.Addr.String() || f[4] != want || !strings.Contains(rows[0], "workstation") {
			t.Errorf("target %s: row %q, want its address, sources %s and its roles", tg.NetBIOSName, rows[0], want)
		}
	}
}
