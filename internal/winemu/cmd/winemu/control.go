package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

// serveControl accepts line commands on a Unix socket until ctx ends:
//
//	status                 -> "ok <modes>"
//	tampered               -> "ok <number of tampered fragments>"
//	services               -> "ok <name>:<state>:<pid> ..."
//	imagepaths             -> "ok <JSON array of the binary paths of every service created>"
//	<fault specification>  -> "ok <modes>" or "error <reason>"
//
// (see winemu.Faults.Set for the specification). The socket lives in the
// file system, so a test in another network namespace can reach it.
func serveControl(ctx context.Context, path string, srv *winemu.Server, logger *slog.Logger) (func(), error) {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					reply := control(srv, strings.TrimSpace(sc.Text()))
					logger.Info("control", "command", sc.Text(), "reply", reply)
					if _, err := fmt.Fprintln(c, reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	return func() {
		stop()
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		_ = os.Remove(path)
	}, nil
}

func control(srv *winemu.Server, cmd string) string {
	switch cmd {
	case "status":
		return "ok " + srv.Faults.String()
	case "tampered":
		return fmt.Sprintf("ok %d", len(srv.Faults.Tampered()))
	case "services":
		var parts []string
		for _, s := range srv.SCM().Services() {
			parts = append(parts, fmt.Sprintf("%s:%d:%d", s.Name, s.State, s.PID))
		}
		return strings.TrimSpace("ok " + strings.Join(parts, " "))
	case "imagepaths": // what any local user reads in event 7045
		paths := []string{}
		for _, s := range srv.SCM().Installed() {
			paths = append(paths, s.BinaryPath)
		}
		b, _ := json.Marshal(paths)
		return "ok " + string(b)
	}
	if err := srv.Faults.Set(cmd); err != nil {
		return "error " + err.Error()
	}
	return "ok " + srv.Faults.String()
}
