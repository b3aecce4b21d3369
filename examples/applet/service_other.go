//go:build !windows

package main

import "log/slog"

func runMain(cfg config, log *slog.Logger) int { return runPlain(cfg, log) }
