package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestMain runs the command itself when the test binary is started with
// LAB_CMD_MAIN=1, so the tests can run it as a child process.
func TestMain(m *testing.M) {
	if os.Getenv("LAB_CMD_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func labCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LAB_CMD_MAIN=1")
	return cmd
}

func requireLab(t *testing.T) {
	if err := testlab.Available(); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("LANCONNECT_LAB") == "require" {
			t.Fatalf("lab required but unavailable: %v", err)
		}
		t.Skip(err)
	}
}

var stateRE = regexp.MustCompile(`state: (\S+)`)

// TestUpInterrupt starts `lab up`, waits until it is up, interrupts it as
// Ctrl-C would and checks that it tore the lab down and printed no
// password.
func TestUpInterrupt(t *testing.T) {
	requireLab(t)
	cmd := labCmd("up", "-targets", "2", "-client")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	var text strings.Builder
	sc := bufio.NewScanner(out)
	up := false
	for sc.Scan() {
		text.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "lab: up") {
			up = true
			break
		}
	}
	if !up {
		_ = cmd.Wait()
		t.Fatalf("lab up did not come up:\n%s\n%s", text.String(), stderr.String())
	}
	m := stateRE.FindStringSubmatch(text.String())
	if m == nil {
		t.Fatalf("no state path in:\n%s", text.String())
	}
	if _, err := os.Stat(m[1]); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lab up after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("lab up did not exit after SIGINT")
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left after SIGINT: %v", err)
	}
	if !strings.Contains(stderr.String(), "removed: start") {
		t.Errorf("no teardown report:\n%s", stderr.String())
	}
	if strings.Contains(strings.ToLower(text.String()+stderr.String()), "password\":") {
		t.Errorf("output shows a password:\n%s", text.String())
	}
	t.Logf("%s%s", text.String(), stderr.String())
}

// TestDemo runs the whole demo and checks that it lists the lab and says
// which steps are not implemented.
func TestDemo(t *testing.T) {
	requireLab(t)
	if err := testlab.AvailableDC(); err != nil {
		requireLab(t)
		t.Skip(err)
	}
	cmd := labCmd("demo")
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"target ", "dc ", "realm ", "client ", "step 1/", "removed: start",
		"$ connect -check", "): READY", "): NOT READY", "as expected"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	t.Log(out)
}

// TestInterruptDuringStart interrupts `lab up -dc` while it is starting
// (once its first daemons run) and checks that nothing is left.
func TestInterruptDuringStart(t *testing.T) {
	requireLab(t)
	if err := testlab.AvailableDC(); err != nil {
		t.Skip(err)
	}
	cmd := labCmd("up", "-targets", "3", "-dc", "-computers", "500")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	var st *testlab.State
	deadline := time.Now().Add(60 * time.Second)
	for st == nil && time.Now().Before(deadline) {
		labs, _ := testlab.Labs()
		for _, s := range labs {
			if s.OwnerPID == cmd.Process.Pid && len(s.PIDs) >= 2 {
				st = s
			}
		}
		if st == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if st == nil {
		t.Fatalf("no state file from pid %d:\n%s", cmd.Process.Pid, out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("lab up did not exit after SIGINT")
	}
	if _, err := os.Stat(testlab.StatePath(st.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v\n%s", err, out.String())
	}
	for _, ns := range st.Netns {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s left", ns)
		}
	}
	if _, err := os.Stat(st.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir %s left", st.Dir)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), st.Dir) {
			t.Errorf("process %s left: %s", e.Name(), strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	t.Log(out.String())
}

// TestDown checks that `lab down` stops a lab of `lab up` through its
// owner, and leaves alone a lab whose owner is a running test (this one).
func TestDown(t *testing.T) {
	requireLab(t)
	mine := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{NoNmbd: true}}})
	up := labCmd("up", "-targets", "1")
	out, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	up.Stderr = &stderr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = up.Process.Kill() }()
	sc := bufio.NewScanner(out)
	var text strings.Builder
	for sc.Scan() {
		text.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "lab: up") {
			break
		}
	}
	m := stateRE.FindStringSubmatch(text.String())
	if m == nil {
		t.Fatalf("lab up did not come up:\n%s\n%s", text.String(), stderr.String())
	}
	go func() { _, _ = bufio.NewReader(out).WriteTo(new(strings.Builder)) }()
	// Name the labs, so that labs of concurrent runs are left alone.
	upID := strings.TrimSuffix(filepath.Base(m[1]), ".json")
	b, err := labCmd("down", upID, mine.ID).CombinedOutput()
	if err != nil {
		t.Fatalf("lab down: %v\n%s", err, b)
	}
	done := make(chan error, 1)
	go func() { done <- up.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("lab up still running after lab down:\n%s", b)
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("up's lab state left after down: %v", err)
	}
	if _, err := os.Stat(mine.StatePath()); err != nil {
		t.Errorf("down removed a running test's lab: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "stopped by its owner") || !strings.Contains(string(b), mine.ID+": owned by running") {
		t.Errorf("lab down output:\n%s", b)
	}
	t.Logf("lab down:\n%s", b)
}
