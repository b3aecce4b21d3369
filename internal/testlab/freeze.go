package testlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FreezeSMB stops (SIGSTOP) every smbd process of the target, so that a
// client's next request waits unread in its socket; thaw (SIGCONT) lets
// it and the ones behind it through, in order. A test uses it to end a
// client's call while the server holds the request, then to let the
// server carry it out anyway. thaw may be called more than once; Close
// does not thaw, so call it (for example with t.Cleanup).
func (t *Target) FreezeSMB() (thaw func() error, err error) {
	if t.NoSMB {
		return nil, ErrNoSMB
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pids []int
	for _, pid := range netnsPids(ctx, t.Name) {
		if strings.HasPrefix(procComm(pid), "smbd") {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("testlab: no smbd runs on %s", t.NetBIOSName)
	}
	thaw = func() error {
		var errs []error
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
			_ = thaw()
			return nil, fmt.Errorf("testlab: freeze smbd %d: %w", pid, err)
		}
	}
	return thaw, nil
}

// WaitSMBQueued polls until an established TCP connection to the target's
// port 445 has unread bytes in its receive queue (a request that smbd has
// not read: after FreezeSMB, the client's call is in flight), or until ctx
// ends.
func (t *Target) WaitSMBQueued(ctx context.Context) error {
	for {
		n, err := t.smbQueued(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testlab: no request queued on %s:445: %w", t.NetBIOSName, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// smbQueued returns the bytes waiting in the receive queues of the
// established connections to port 445 in the target's namespace, read
// from /proc/PID/net/tcp{,6} of a process there.
func (t *Target) smbQueued(ctx context.Context) (int, error) {
	pids := netnsPids(ctx, t.Name)
	if len(pids) == 0 {
		return 0, fmt.Errorf("testlab: no process in namespace %s", t.Name)
	}
	total := 0
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pids[0], f))
		if err != nil {
			return 0, fmt.Errorf("testlab: %w", err)
		}
		total += rxQueued(string(b), 445)
	}
	return total, nil
}

// rxQueued sums rx_queue over the established sockets of a
// /proc/net/tcp table whose local port is port.
func rxQueued(table string, port int) int {
	total := 0
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "01" { // TCP_ESTABLISHED
			continue
		}
		_, lp, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(lp, 16, 16); err != nil || int(p) != port {
			continue
		}
		_, rx, ok := strings.Cut(f[4], ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(rx, 16, 32); err == nil {
			total += int(n)
		}
	}
	return total
}
