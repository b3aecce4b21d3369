//go:build !windows

package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
)

// statusFDEnv is the variable through which winemu's emulated Service
// Control Manager (internal/winemu, ServiceStatusFDEnv) hands a service
// process the descriptor on which to report that it runs. It is not
// imported from winemu: the applet must not depend on a test peer.
const statusFDEnv = "WINEMU_SERVICE_STATUS_FD"

// runMain reports SERVICE_RUNNING to winemu's SCM when it started us, as
// the Windows build does to the real SCM, and then runs as a plain
// process. Started any other way (WMI, by hand) it only runs as a plain
// process.
func runMain(cfg config, log *slog.Logger) int {
	if err := reportRunning(os.Getenv(statusFDEnv)); err != nil {
		log.Error("cannot report running to the service control manager", "err", err)
		return 1
	}
	return runPlain(cfg, log)
}

// reportRunning writes "running" on the inherited descriptor named by fd
// and closes it. An empty fd means no SCM is waiting: it does nothing.
func reportRunning(fd string) error {
	if fd == "" {
		return nil
	}
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return fmt.Errorf("%s=%q is not an inherited descriptor", statusFDEnv, fd)
	}
	f := os.NewFile(uintptr(n), "scm-status")
	if f == nil {
		return fmt.Errorf("%s=%q is not a valid descriptor", statusFDEnv, fd)
	}
	defer f.Close()
	if _, err := f.WriteString("running\n"); err != nil {
		return fmt.Errorf("report to the SCM: %w", err)
	}
	return nil
}
