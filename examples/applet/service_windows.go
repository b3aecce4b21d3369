//go:build windows

package main

import (
	"context"
	"log/slog"

	"golang.org/x/sys/windows/svc"
)

// runMain runs under the Service Control Manager when it started us, and
// as a plain process otherwise (WMI, or by hand).
func runMain(cfg config, log *slog.Logger) int {
	isSvc, err := svc.IsWindowsService()
	if err != nil || !isSvc {
		return runPlain(cfg, log)
	}
	// The SCM passes the service name as the first argument to Execute; the
	// name is not known before, and svc.Run ignores it for own-process
	// services.
	h := &handler{cfg: cfg, log: log}
	if err := svc.Run("", h); err != nil {
		log.Error("service run failed", "err", err)
		return 1
	}
	return h.code
}

type handler struct {
	cfg  config
	log  *slog.Logger
	code int
}

func (h *handler) Execute(_ []string, req <-chan svc.ChangeRequest, st chan<- svc.Status) (bool, uint32) {
	st <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, h.cfg, true, h.log) }()
	st <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			if err != nil {
				h.log.Error("applet ends", "err", err)
				h.code = 1
			}
			st <- svc.Status{State: svc.StopPending}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				st <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				st <- svc.Status{State: svc.StopPending}
				cancel()
				<-done
				return false, 0
			}
		}
	}
}
