package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/wmi"
)

// TestWMIFlag: with -wmi, the command serves DCOM/WMI; a process started
// through Win32_Process.Create is stopped when the command stops.
func TestWMIFlag(t *testing.T) {
	ip, root, _, _, cancel, exit := startRun(t, "-wmi")
	if err := os.WriteFile(filepath.Join(root, "Temp", "app.exe"), []byte("#!/bin/sh\nsleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	creds, err := adauth.Parse(`.\Administrator`, "S3cret!")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelCtx := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelCtx()
	h, err := (&wmi.Launcher{}).Launch(ctx, &deploy.Target{Addr: ip, Grant: &adauth.Grant{Addr: ip, Credentials: creds}}, deploy.LaunchSpec{Path: `C:\Windows\Temp\app.exe`})
	if err != nil {
		t.Fatalf("launch through WMI: %v", err)
	}
	pid := int(h.PID())
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("winemu did not stop")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); len(b) > 0 && !zombie(string(b)) {
			t.Fatalf("process %d still running after winemu stopped", pid)
		}
	}
}

func zombie(stat string) bool {
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == 'Z'
		}
	}
	return false
}
