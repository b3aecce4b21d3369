package testlab

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Usage is what a lab's processes hold and have used, at one moment.
type Usage struct {
	Procs int   // processes in the lab's namespaces
	RSS   int64 // bytes, summed over the processes (shared pages once per process)
	PSS   int64 // bytes, summed: shared pages divided among their sharers
	// CPU is user plus system time so far, summed, with that of the
	// children each process has reaped (smbd's per-connection forks,
	// samba-dcerpcd's helpers, an emulator's applets).
	CPU       time.Duration
	ByComm    map[string]int           // processes per command name (rpcd_* counted together)
	CPUByComm map[string]time.Duration // CPU per command name, as CPU
}

// String describes u on one line.
func (u Usage) String() string {
	var kinds []string
	for c, k := range u.ByComm {
		kinds = append(kinds, fmt.Sprintf("%s %d", c, k))
	}
	slices.Sort(kinds)
	return fmt.Sprintf("%d processes (%s): sum of RSS %.0f MB, sum of PSS %.0f MB",
		u.Procs, strings.Join(kinds, ", "), float64(u.RSS)/1e6, float64(u.PSS)/1e6)
}

// Usage sums the memory (RSS and PSS, from /proc/PID/smaps_rollup) and
// the CPU time of every process in the lab's namespaces: the daemons the
// lab started, the helpers they spawned (samba-dcerpcd, rpcd_*), and what
// tests started there (an emulator, its applets). It does not count the
// test process itself, nor a process that exited and was not reaped by
// one in the lab (its CPU is lost). Sum of RSS counts the pages that
// smbd's forks share once per process; sum of PSS is the lab's real share
// of memory.
func (l *Lab) Usage(ctx context.Context) Usage {
	l.mu.Lock()
	names := slices.Clone(l.state.Netns)
	l.mu.Unlock()
	u := Usage{ByComm: map[string]int{}, CPUByComm: map[string]time.Duration{}}
	for _, ns := range names {
		for _, pid := range netnsPids(ctx, ns) {
			rss, pss, ok := smapsRollup(pid)
			if !ok {
				continue
			}
			u.Procs++
			u.RSS += rss
			u.PSS += pss
			cpu := procCPU(pid)
			u.CPU += cpu
			c := procComm(pid)
			if strings.HasPrefix(c, "rpcd_") {
				c = "rpcd_*"
			}
			u.ByComm[c]++
			u.CPUByComm[c] += cpu
		}
	}
	return u
}

// smapsRollup reads a process's Rss and Pss in bytes.
func smapsRollup(pid int) (rss, pss int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = kb * 1024
		case "Pss:":
			pss = kb * 1024
		}
	}
	return rss, pss, true
}

// procCPU is a process's utime, stime, cutime and cstime (fields 14 to
// 17 of /proc/PID/stat, in clock ticks of 1/100 s, USER_HZ on Linux).
func procCPU(pid int) time.Duration {
	f := procStat(pid)
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, x := range f[11:15] {
		v, _ := strconv.ParseInt(x, 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
