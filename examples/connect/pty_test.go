package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// openPTY returns the master and slave of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("TIOCSPTLCK: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("TIOCGPTN: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// terminal collects what connect writes to the terminal.
type terminal struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	more chan struct{}
}

func (tm *terminal) read(m *os.File) {
	b := make([]byte, 4096)
	for {
		n, err := m.Read(b)
		tm.mu.Lock()
		tm.buf.Write(b[:n])
		tm.mu.Unlock()
		select {
		case tm.more <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// waitFor waits until the terminal shows s after offset from.
func (tm *terminal) waitFor(t *testing.T, s string, from int) int {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		tm.mu.Lock()
		text := tm.buf.String()
		tm.mu.Unlock()
		if i := strings.Index(text[from:], s); i >= 0 {
			return from + i + len(s)
		}
		select {
		case <-tm.more:
		case <-deadline:
			t.Fatalf("terminal never showed %q; it shows:\n%s", s, text)
		}
	}
}

// TestLabPrompt: a non-administrator is refused, connect asks on the
// terminal, and the administrator typed there reaches Running.
func TestLabPrompt(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	startWinemu(ctx, t, tgt, tgt.Admin.Password)
	master, slave := openPTY(t)

	cmd := exec.CommandContext(ctx, buildBin(t, "connect", ""), "-json", "-method", "scm", "-user", tgt.User.User,
		"-console", lab.HostAddr.String()+":0", "-applet", buildBin(t, "applet", ""), tgt.Addr.String())
	cmd.Env = append(os.Environ(), "LANCONNECT_PASSWORD="+tgt.User.Password)
	var stdout bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &stdout, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tm := &terminal{more: make(chan struct{}, 1)}
	go tm.read(master)
	at := tm.waitFor(t, "Account (DOMAIN\\user, empty to give up): ", 0)
	fmt.Fprintf(master, "%s\n", tgt.Admin.User)
	tm.waitFor(t, "Password: ", at)
	fmt.Fprintf(master, "%s\n", tgt.Admin.Password)
	err := cmd.Wait()
	tm.mu.Lock()
	shown := tm.buf.String()
	tm.mu.Unlock()
	if strings.Contains(shown, tgt.Admin.Password) {
		t.Fatal("the password was echoed on the terminal")
	}
	evs := parseEvents(t, stdout.Bytes())
	r := runResult{events: evs}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	}
	host := tgt.Addr.String()
	checkRunningThenClosed(t, r, host, "scm")
	got := brief(r.of(host))
	if !strings.HasPrefix(got, "Connecting/authenticate Connecting/credentials Connecting/authenticate Connecting/preflight") {
		t.Fatalf("events %s", got)
	}
	for _, e := range r.of(host) {
		if e.State == "Running" {
			if e.raw["account"] != tgt.Admin.User {
				t.Fatalf("running as %v", e.raw["account"])
			}
			break
		}
	}
	t.Logf("prompt path: %s", got)
}

// TestLabBulkPromptOnce: a bulk run whose shared password is wrong makes
// one failed logon, asks once at the terminal, and every host then runs
// with the answer.
func TestLabBulkPromptOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	const n = 3
	buildAll(t)
	lab := testlab.New(t, testlab.Options{Targets: make([]testlab.TargetSpec, n)})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pw := lab.Targets[0].Admin.Password
	var addrs []string
	for _, tgt := range lab.Targets {
		setPassword(ctx, t, tgt, pw)
		startWinemu(ctx, t, tgt, pw)
		addrs = append(addrs, tgt.Addr.String())
	}
	master, slave := openPTY(t)
	args := append([]string{"-json", "-method", "scm", "-concurrency", fmt.Sprint(n), "-user", lab.Targets[0].Admin.User,
		"-console", lab.HostAddr.String() + ":0", "-applet", buildBin(t, "applet", "")}, addrs...)
	cmd := exec.CommandContext(ctx, buildBin(t, "connect", ""), args...)
	cmd.Env = append(os.Environ(), "LANCONNECT_PASSWORD=not-the-password-2")
	var stdout bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &stdout, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tm := &terminal{more: make(chan struct{}, 1)}
	go tm.read(master)
	const ask = "Account (DOMAIN\\user, empty to give up): "
	at := tm.waitFor(t, ask, 0)
	fmt.Fprintf(master, "%s\n", lab.Targets[0].Admin.User)
	tm.waitFor(t, "Password: ", at)
	fmt.Fprintf(master, "%s\n", pw)
	err := cmd.Wait()
	tm.mu.Lock()
	shown := tm.buf.String()
	tm.mu.Unlock()
	if c := strings.Count(shown, ask); c != 1 {
		t.Fatalf("asked %d times:\n%s", c, shown)
	}
	r := runResult{events: parseEvents(t, stdout.Bytes())}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	}
	for _, a := range addrs {
		checkRunningThenClosed(t, r, a, "scm")
	}
	total := 0
	for _, tgt := range lab.Targets {
		l, err := tgt.FailedLogons()
		if err != nil {
			t.Fatal(err)
		}
		total += len(l)
	}
	if total != 1 {
		t.Fatalf("the targets logged %d failed logons, want 1", total)
	}
}
