package wmi

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/deploy"
)

// cimDateTime is the CIM DATETIME form of Win32_Process.CreationDate.
var cimDateTime = regexp.MustCompile(`^\d{14}\.\d{6}[+-]\d{3}$`)

// launchSleeper starts the test applet (it sleeps) and returns its handle.
func launchSleeper(ctx context.Context, t *testing.T, e *emu) *Handle {
	t.Helper()
	h, err := (&Launcher{}).launchTarget(ctx, e.target(), deploy.LaunchSpec{Path: e.applet})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	return h
}

func running(e *emu, pid uint32) bool {
	for _, p := range e.wmi.Processes() {
		if uint32(p.PID) == pid {
			return p.Running
		}
	}
	return false
}

// The launch records the process's CreationDate, which winemu serves in
// CIM DATETIME form, and Stop terminates the process while it still is
// the one launched.
func TestStopTerminatesTheLaunchedProcess(t *testing.T) {
	checkLeaks(t)
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := launchSleeper(ctx, t, e)
	if !cimDateTime.MatchString(h.created) {
		t.Fatalf("CreationDate %q is not a CIM DATETIME", h.created)
	}
	created, err := time.Parse("20060102150405", h.created[:14])
	if err != nil || time.Since(created) > time.Minute || time.Until(created) > time.Minute {
		t.Fatalf("CreationDate %q is not about now (%v)", h.created, err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.wmi.Terminated(); !slices.Equal(got, []int{int(h.PID())}) || running(e, h.PID()) {
		t.Fatalf("Terminate calls %v, still running %v", got, running(e, h.PID()))
	}
}

// Windows reuses process IDs: when another process holds the applet's ID
// (another executable, another CreationDate), Running says false and Stop
// does not terminate it.
func TestStopLeavesAReusedProcessID(t *testing.T) {
	checkLeaks(t)
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		name, exe string
		created   time.Time
	}{
		{"another executable, same start", `C:\Windows\System32\notepad.exe`, time.Time{}},
		{"same executable, started later", "", time.Now().Add(time.Hour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := launchSleeper(ctx, t, e)
			exe, created := c.exe, c.created
			if exe == "" {
				exe = e.applet
			}
			if created.IsZero() { // the same CreationDate as the launch
				var err error
				if created, err = time.Parse("20060102150405.000000", h.created[:21]); err != nil {
					t.Fatal(err)
				}
			}
			e.wmi.Faults.SetReusedPID(int(h.PID()), exe, created)
			defer e.wmi.Faults.SetReusedPID(int(h.PID()), "", time.Time{})
			if r, err := h.Running(ctx); err != nil || r {
				t.Fatalf("Running = %v, %v for another process under the ID", r, err)
			}
			if err := h.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if got := e.wmi.Terminated(); slices.Contains(got, int(h.PID())) {
				t.Fatalf("Terminate was called on the reused ID %d: %v", h.PID(), got)
			}
			// The real process was left alone too: only the handle's
			// view of the ID changed.
			if !running(e, h.PID()) {
				t.Fatal("process gone")
			}
		})
	}
}

// An applet that said goodbye exits by itself: Stop sends nothing.
func TestStopAfterGoodbyeTerminatesNothing(t *testing.T) {
	checkLeaks(t)
	e := startEmu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := launchSleeper(ctx, t, e)
	var _ deploy.ExitNotifier = h
	h.AppletExited()
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.wmi.Terminated(); len(got) != 0 || !running(e, h.PID()) {
		t.Fatalf("Terminate calls %v after goodbye; running %v", got, running(e, h.PID()))
	}
	if r, err := h.Running(ctx); err != nil || r {
		t.Fatalf("Running after goodbye = %v, %v", r, err)
	}
}
