package testlab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Netns is a network namespace of the lab with one address on the lab
// bridge. The zero value names no namespace; its Command then runs in the
// caller's namespace.
type Netns struct {
	Name string     // namespace name (as in `ip netns list`)
	Addr netip.Addr // its address on the lab bridge

	lab *Lab
}

// Command returns a command that runs name inside the namespace through
// `ip netns exec`, which also bind-mounts /etc/netns/NAME/* over /etc. It
// does not start it. The command is not tracked by the lab; use Start for
// long-running processes.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if n == nil || n.Name == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Start starts a long-running process inside the namespace. Its output goes
// to a log file in the lab directory. The lab stops it at Close if Stop was
// not called before. ctx bounds only the start, not the process's life.
func (n *Netns) Start(ctx context.Context, name string, args ...string) (*Process, error) {
	return n.start(ctx, filepath.Base(name), append([]string{name}, args...))
}

// startPrivateRun is like Start, but the process sees runDir at /run/samba
// (bind-mounted in the private mount namespace that `ip netns exec`
// creates). Samba keeps sockets there whose paths no setting changes
// (nmbd's "unexpected" socket, winbindd's pipe), so daemons of different
// labs and targets must not share the host's.
func (n *Netns) startPrivateRun(ctx context.Context, runDir string, argv ...string) (*Process, error) {
	return n.start(ctx, filepath.Base(argv[0]), append([]string{"sh", "-c", `mount --bind "$0" /run/samba && exec "$@"`, runDir}, argv...))
}

func (n *Netns) start(ctx context.Context, label string, argv []string) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var logPath string
	if n.lab != nil {
		logPath = filepath.Join(n.lab.Dir, "log", fmt.Sprintf("%s-%s-%d.out", n.Name, label, time.Now().UnixNano()))
	}
	if n.Name != "" {
		argv = append([]string{"ip", "netns", "exec", n.Name}, argv...)
	}
	p, err := startProcess(argv, logPath, nil)
	if err != nil {
		return nil, err
	}
	if n.lab != nil {
		if err := n.lab.track(p); err != nil {
			_ = p.Stop()
			return nil, err
		}
	}
	return p, nil
}

// Process is a long-running process started by the lab. Its zero value is
// not usable; get one from Netns.Start.
type Process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
	once    sync.Once
}

// startProcess starts argv (argv[0] looked up in PATH) with output to
// logPath (or discarded) and a process group of its own, so that a signal
// to the test binary's group does not reach it before Close does.
func startProcess(argv []string, logPath string, env []string) (*Process, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var f *os.File
	if logPath != "" {
		var err error
		f, err = os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("testlab: %w", err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, &CommandError{Args: argv, Err: err}
	}
	p := &Process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process ID. Processes started through `ip netns exec`
// keep it, since ip execs the program.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogPath returns the file that holds the process's standard output and
// error, or "" when its output is discarded (a process started outside a
// lab).
func (p *Process) LogPath() string { return p.logPath }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, waits up to three seconds, then sends SIGKILL and
// waits for the exit. It is idempotent and returns nil once the process is
// gone, whatever its exit status.
func (p *Process) Stop() error {
	p.once.Do(func() {
		if p.Exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return nil
}

// logTail returns the last lines of the process's output file.
func (p *Process) logTail() string {
	if p == nil || p.logPath == "" {
		return ""
	}
	return fileTail(p.logPath, 15)
}

func fileTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// run runs a short command and returns its combined output, or a
// *CommandError. stdin may be nil. Args must not contain secrets.
func run(ctx context.Context, stdin []byte, env []string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		o := strings.TrimSpace(string(out))
		if len(o) > 2000 {
			o = "..." + o[len(o)-2000:]
		}
		return string(out), &CommandError{Args: argv, Output: o, Err: err}
	}
	return string(out), nil
}

// netnsPids returns the PIDs of every process in the named namespace.
func netnsPids(ctx context.Context, ns string) []int {
	out, err := run(ctx, nil, nil, "ip", "netns", "pids", ns)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procComm returns the command name of pid, or "".
func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// procStartTime returns the start time (clock ticks since boot) of pid, or
// 0. Together with the PID it identifies a process across PID reuse.
func procStartTime(pid int) uint64 {
	f := procStat(pid)
	// starttime is field 22.
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// procStat returns the fields of /proc/PID/stat after the command name,
// so that f[0] is field 3 (state); nil if pid is gone.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// killPids sends SIGTERM to every pid, waits until all are gone or grace
// has passed, then sends SIGKILL to the rest and waits up to two seconds
// more. It returns an error naming the PIDs that survived.
func killPids(pids []int, grace time.Duration) error {
	if len(pids) == 0 {
		return nil
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if waitGone(pids, grace) {
		return nil
	}
	for _, pid := range pids {
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if waitGone(pids, 2*time.Second) {
		return nil
	}
	var left []string
	for _, pid := range pids {
		if alive(pid) {
			left = append(left, strconv.Itoa(pid))
		}
	}
	return fmt.Errorf("testlab: processes survived SIGKILL: %s", strings.Join(left, " "))
}

// waitGone polls /proc until every pid is gone or d has passed. Process
// exit of a non-child has no event to wait on, so this polls with a short
// interval.
func waitGone(pids []int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		all := true
		for _, pid := range pids {
			if alive(pid) {
				all = false
				break
			}
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
