package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lanconnect/lanconnect/session/checkin"
)

// version is the applet's version, reported at check-in.
const version = "0.1.0"

type config struct {
	ticket    checkin.Ticket
	heartbeat time.Duration
	logFile   string
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("applet", flag.ContinueOnError)
	var c config
	get := checkin.RegisterFlags(fs)
	fs.DurationVar(&c.heartbeat, "heartbeat", 15*time.Second, "heartbeat interval")
	fs.StringVar(&c.logFile, "log", "", "append logs to this file (default: standard error)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	t, err := get()
	c.ticket = t
	return c, err
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "applet:", err)
		os.Exit(2)
	}
	var w io.Writer = os.Stderr
	if cfg.logFile != "" {
		f, err := os.OpenFile(cfg.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err == nil {
			defer f.Close()
			w = f
		}
	}
	log := slog.New(slog.NewTextHandler(w, nil))
	os.Exit(runMain(cfg, log))
}

// run checks in and serves until the console says stop (nil), the
// connection drops, or ctx is done.
func run(ctx context.Context, cfg config, service bool, log *slog.Logger) error {
	host, _ := os.Hostname()
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	ac, err := checkin.Dial(dctx, cfg.ticket, checkin.Hello{
		Name: host, PID: os.Getpid(), Applet: "lanconnect-sample-applet " + version, Service: service,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("check-in with %s failed: %w", cfg.ticket.Addr, err)
	}
	log.Info("checked in", "console", cfg.ticket.Addr, "session", ac.Session())
	err = ac.Run(ctx, cfg.heartbeat)
	if err == nil {
		log.Info("console asked to stop")
	}
	return err
}

// runPlain runs as an ordinary process, stopping on SIGINT or SIGTERM.
func runPlain(cfg config, log *slog.Logger) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, false, log); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("applet ends", "err", err)
		return 1
	}
	return 0
}
