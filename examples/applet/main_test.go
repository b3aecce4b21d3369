package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/session/checkin"
)

// buildApplet builds this command into a temporary directory.
func buildApplet(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "applet")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestAppletProcess runs the real binary: it checks in, heartbeats, and
// exits 0 when the console says stop; it exits 1 when the console drops it
// and 2 on bad arguments.
func TestAppletProcess(t *testing.T) {
	bin := buildApplet(t)
	s := &checkin.Server{}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name     string
		end      func(*checkin.Conn)
		wantCode int
	}{
		{"stop", func(c *checkin.Conn) { _ = c.Stop(ctx) }, 0},
		{"drop", func(c *checkin.Conn) { c.Close() }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Expect(tc.name, "")
			if err != nil {
				t.Fatal(err)
			}
			// "stop" reads its ticket from a file next to the binary
			// (what the console does), "drop" from the old flags.
			args := p.Ticket().Args()
			ticketFile := filepath.Join(filepath.Dir(bin), tc.name+".ticket")
			if tc.name == "stop" {
				if err := os.WriteFile(ticketFile, p.Ticket().FileContent(), 0o600); err != nil {
					t.Fatal(err)
				}
				args = checkin.FileArgs(tc.name + ".ticket")
			}
			cmd := exec.CommandContext(ctx, bin, append(args, "-heartbeat", "20ms")...)
			cmd.Dir = t.TempDir() // the file is found next to the binary, not here
			cmd.Stderr = os.Stderr
			// "stop" is started as winemu's SCM starts a service: it must
			// report running on the descriptor it is given.
			var status *os.File
			if tc.name == "stop" {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				status = r
				cmd.ExtraFiles = []*os.File{w}
				cmd.Env = append(os.Environ(), statusFDEnv+"=3")
				defer w.Close()
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if status != nil {
				cmd.ExtraFiles[0].Close()
				b, err := io.ReadAll(status) // until the applet closes it
				if err != nil || string(b) != "running\n" {
					t.Fatalf("status report %q, %v; want \"running\\n\"", b, err)
				}
			}
			c, err := p.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c.Hello.PID != cmd.Process.Pid {
				t.Errorf("checked in with pid %d, started %d", c.Hello.PID, cmd.Process.Pid)
			}
			tc.end(c)
			err = cmd.Wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d", code, tc.wantCode)
			}
			if _, err := os.Stat(ticketFile); !os.IsNotExist(err) {
				t.Fatalf("ticket file left: %v", err)
			}
			if c.SaidGoodbye() != (tc.name == "stop") {
				t.Fatalf("goodbye %v", c.SaidGoodbye())
			}
		})
	}

	err := exec.CommandContext(ctx, bin, "-console", "127.0.0.1:1").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("bad args: %v, want exit 2", err)
	}
}

// TestReportRunning: the report goes to the descriptor named; no name
// means no SCM; a name that is no inherited descriptor is an error.
func TestReportRunning(t *testing.T) {
	if err := reportRunning(""); err != nil {
		t.Fatalf("no descriptor: %v", err)
	}
	for _, bad := range []string{"x", "1", "-3"} {
		if err := reportRunning(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}
