package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// BenchmarkLabBulk is `make bench-bulk` (issue 17 §3): one lab of as many
// targets as the largest size (each with smbd, nmbd and winemu), then the
// connect binary against 1, 16 and 64 of them in the same run, each host
// reaching Running and then Closed. It prints, per size, the wall time of
// the connect process, the median and p95 time to Running, connect's peak
// RSS (ru_maxrss of the exited child), the median time of each step from
// the NDJSON events, and the ratios against the goals (16 hosts within
// 2.5x one host, 64 within 4x, peak RSS under 100 MB at 64). It also
// prints the lab's start-up time and memory (testlab's Usage: the sum of
// RSS and of PSS of the processes in the lab's namespaces).
//
// The targets run Samba's RPC daemon as a resident daemon
// (testlab.TargetSpec.ResidentRPC), as a Windows computer runs its RPC
// services: with Samba's default, samba-dcerpcd starts on demand at the
// first pipe open and exits after about a minute idle, and 64 of them
// respawning at once cost 16.7 s of the lab's CPU in one 64-host run
// (37.7 s in all; 16.1 s with resident daemons) and broke the svcctl
// pipe on some hosts, so each size above 8 needed an unmeasured wake-up
// pass first; it needs none now.
//
// Cold and warm: the first connect to a fresh target waits for
// samba-dcerpcd to start its rpcd_* helpers (the lab's cost, not ours),
// so the bench first runs one cold pass (one host, then every host at
// -concurrency 8) and prints it, then measures the sizes warm (every host
// at once), interleaved, in LANCONNECT_BENCH_ROUNDS rounds (default 3);
// the goals are checked on the warm figures (a repeated push, which is
// also what the goals' baseline of one host measures best). The cold pass
// is not all at once because 64 fresh targets starting their helpers at
// once on 2 CPUs fail (measured with resident daemons: 62 of 64 hosts'
// scm checks timed out binding svcctl, wall 23.7 s).
//
// Every size is CPU-bound here: the targets' Samba and winemu share the
// machine's CPUs with connect. The report prints, per size, the floor
// (connect's and the lab's CPU over the CPUs: no schedule could finish
// sooner) and wall/floor, and, against one host's wall, the floor with
// the lab's CPU and with connect's alone (the bound if the targets had
// CPUs of their own).
//
// It does not fail when a goal is missed: it reports. It fails when a host
// does not reach Running and then Closed cleanly, or when something is
// left on a target. It needs root (it skips otherwise) and runs only under
// -bench (LANCONNECT_BENCH_SIZES, default "1,16,64", changes the sizes).
//
// For a focused run: LANCONNECT_BENCH_COLD=0 does not report the cold
// pass (above 8 hosts it still runs, unmeasured), e.g. LANCONNECT_BENCH_SIZES=64 LANCONNECT_BENCH_ROUNDS=1 for
// the 64-host warm figure alone. LANCONNECT_BENCH_MEMPROFILE=dir builds
// connect with memprofile_debug.go and keeps, per measured run, a heap
// profile, the goroutines and the runtime's memory classes at its peak
// under dir.
func BenchmarkLabBulk(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the lab needs root")
	}
	sizes, err := benchSizes(os.Getenv("LANCONNECT_BENCH_SIZES"))
	if err != nil {
		b.Fatal(err)
	}
	rounds := 3
	if s := os.Getenv("LANCONNECT_BENCH_ROUNDS"); s != "" {
		if rounds, err = strconv.Atoi(s); err != nil || rounds < 1 {
			b.Fatalf("LANCONNECT_BENCH_ROUNDS=%q: want a positive number", s)
		}
	}
	n := slices.Max(sizes)
	buildAll(b)
	specs := make([]testlab.TargetSpec, n)
	for i := range specs {
		specs[i].ResidentRPC = true
	}
	lab := testlab.New(b, testlab.Options{Targets: specs})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	tm := lab.Timings()
	benchf("lab: %d targets up in %v (network %v, targets %v)", n,
		tm.Start.Round(time.Millisecond), tm.Network.Round(time.Millisecond), tm.Targets.Round(time.Millisecond))

	t0 := time.Now()
	pw, addrs, emus := startBulkTargets(ctx, b, lab)
	benchf("emulators: %d winemu started and answering in %v (passwords set 4 at a time, emulators launched at once)", n, time.Since(t0).Round(time.Millisecond))
	benchf("lab memory after start: %s", lab.Usage(ctx))

	applet := buildBin(b, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	connect := func(hosts []string, concurrency int) bulkRun {
		args := []string{"-console", net.JoinHostPort(lab.HostAddr.String(), "0"), "-applet", applet,
			"-method", "scm", "-concurrency", strconv.Itoa(concurrency), "-user", lab.Targets[0].Admin.User}
		before := lab.Usage(ctx)
		r := runConnect(ctx, b, pw, append(args, hosts...)...)
		after := lab.Usage(ctx)
		// Connect's memory and time are printed even when a host then
		// fails the run below (on a loaded machine the lab's svcctl pipe
		// sometimes breaks: STATUS_PIPE_DISCONNECTED).
		benchf("run: %d hosts at -concurrency %d, exit %d, wall %v, peak RSS %.1f MB", len(hosts), concurrency, r.code,
			r.took.Round(time.Millisecond), float64(r.maxRSS)/1e6)
		for i, h := range hosts {
			if last := r.last(h); last.State != "Closed" || last.Cleanup == nil || len(last.Cleanup.Left) != 0 {
				// What Samba saw, before the lab and its logs are gone.
				b.Logf("%s: %s\n%s", h, brief(r.of(h)), sambaLogTails(lab.Targets[i], 15))
			}
			checkRunningThenClosed(b, r, h, "scm")
		}
		br := newBulkRun(b, r, hosts, after.CPU-before.CPU)
		for c, d := range after.CPUByComm {
			br.labByComm[c] = d - before.CPUByComm[c]
		}
		return br
	}

	b.ResetTimer()
	for b.Loop() {
		if os.Getenv("LANCONNECT_BENCH_COLD") != "0" {
			// Cold: the first contact with each target.
			cold1 := connect(addrs[:1], 1)
			coldN := connect(addrs, min(n, coldConcurrency))
			benchf("cold (first contact; Samba starts its RPC helpers): 1 host %s", cold1)
			benchf("cold (first contact; Samba starts its RPC helpers): %d hosts at -concurrency %d %s", n, min(n, coldConcurrency), coldN)
			benchf("lab memory with the RPC helpers spawned: %s", lab.Usage(ctx))
		} else if n > coldConcurrency {
			// The first contact all the same, unmeasured: many fresh
			// targets at once fail (see above).
			connect(addrs, coldConcurrency)
		}

		// Warm: the sizes interleaved, rounds times.
		runs := map[int][]bulkRun{}
		for range rounds {
			for _, size := range sizes {
				if dir := os.Getenv("LANCONNECT_BENCH_MEMPROFILE"); dir != "" {
					// The measured run's peak, in its own folder.
					pdir := filepath.Join(dir, fmt.Sprintf("%d-hosts-round-%d", size, len(runs[size])+1))
					if err := os.MkdirAll(pdir, 0o755); err != nil {
						b.Fatal(err)
					}
					os.Setenv("LANCONNECT_MEMPROFILE", pdir)
				}
				runs[size] = append(runs[size], connect(addrs[:size], size))
				os.Unsetenv("LANCONNECT_MEMPROFILE")
			}
		}
		report(b, sizes, runs)
	}

	checkNothingLeft(b, emus...)
}

// sambaLogTails returns the last n lines of each of tgt's Samba logs.
func sambaLogTails(tgt *testlab.Target, n int) string {
	dir := filepath.Join(filepath.Dir(tgt.SMBConf), "log")
	ents, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", e.Name(), n, strings.Join(lines[max(0, len(lines)-n):], "\n"))
	}
	return b.String()
}

// coldConcurrency is how many fresh targets the cold pass connects to at
// once (see BenchmarkLabBulk).
const coldConcurrency = 8

// benchSizes parses a comma-separated list of host counts.
func benchSizes(s string) ([]int, error) {
	if s == "" {
		s = "1,16,64"
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 200 {
			return nil, fmt.Errorf("LANCONNECT_BENCH_SIZES=%q: want host counts from 1 to 200", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// bulkRun is one connect run's figures.
type bulkRun struct {
	hosts   int
	wall    time.Duration   // the connect process, start to exit
	running []time.Duration // per host: first event to Running
	startup time.Duration   // process start to the first event of any host
	steps   map[string][]time.Duration
	closing []time.Duration // per host: Running to Closed
	maxRSS  int64
	cpu     time.Duration // connect's user+system CPU
	sys     time.Duration // its system part
	labCPU  time.Duration // the lab processes' CPU during the run
	// labByComm is labCPU per command: smbd with its per-connection
	// forks, samba-dcerpcd with the rpcd_* helpers it reaped, winemu with
	// its applets.
	labByComm map[string]time.Duration
}

// newBulkRun reads the figures of r: per host, the time from its first
// event to Running, each step's time (from the step's first event to the
// next step's first event, the last one to Running), and Running to
// Closed.
func newBulkRun(tb testing.TB, r runResult, hosts []string, labCPU time.Duration) bulkRun {
	tb.Helper()
	br := bulkRun{hosts: len(hosts), wall: r.took, steps: map[string][]time.Duration{}, maxRSS: r.maxRSS, cpu: r.cpu, sys: r.sys, labCPU: labCPU,
		labByComm: map[string]time.Duration{}}
	first := time.Time{}
	for _, h := range hosts {
		evs := r.of(h)
		ts := make([]time.Time, len(evs))
		for i, e := range evs {
			ts[i], _ = time.Parse(time.RFC3339Nano, e.Time) // parseEvents checked it
		}
		if first.IsZero() || ts[0].Before(first) {
			first = ts[0]
		}
		run := slices.IndexFunc(evs, func(e event) bool { return e.State == "Running" })
		closed := slices.IndexFunc(evs, func(e event) bool { return e.State == "Closed" })
		br.running = append(br.running, ts[run].Sub(ts[0]))
		br.closing = append(br.closing, ts[closed].Sub(ts[run]))
		// The first event of each step before Running.
		at := map[string]time.Time{}
		var order []string
		for i, e := range evs[:run] {
			if _, ok := at[e.Step]; !ok && e.Step != "" {
				at[e.Step] = ts[i]
				order = append(order, e.Step)
			}
		}
		for i, s := range order {
			end := ts[run]
			if i+1 < len(order) {
				end = at[order[i+1]]
			}
			br.steps[s] = append(br.steps[s], end.Sub(at[s]))
		}
	}
	br.startup = first.Sub(r.start)
	return br
}

func (br bulkRun) String() string {
	return fmt.Sprintf("wall %v, time to Running median %v p95 %v, peak RSS %.1f MB, connect CPU %v, lab CPU %v",
		br.wall.Round(time.Millisecond), median(br.running).Round(time.Millisecond), p95(br.running).Round(time.Millisecond),
		float64(br.maxRSS)/1e6, br.cpu.Round(time.Millisecond), br.labCPU.Round(time.Millisecond))
}

// report prints the warm figures per size, the per-step medians and the
// ratios against the goals.
func report(tb testing.TB, sizes []int, runs map[int][]bulkRun) {
	tb.Helper()
	type row struct {
		wall, med, p95, startup, closing time.Duration
		rss                              int64
		cpu, sys, labCPU                 time.Duration
		steps                            map[string]time.Duration
	}
	rows := map[int]row{}
	for _, size := range sizes {
		var walls, running, startups, closing, cpus, syss, labCPUs []time.Duration
		steps := map[string][]time.Duration{}
		var rss int64
		for _, r := range runs[size] {
			walls = append(walls, r.wall)
			running = append(running, r.running...)
			startups = append(startups, r.startup)
			closing = append(closing, r.closing...)
			cpus = append(cpus, r.cpu)
			syss = append(syss, r.sys)
			labCPUs = append(labCPUs, r.labCPU)
			rss = max(rss, r.maxRSS)
			for s, d := range r.steps {
				steps[s] = append(steps[s], d...)
			}
		}
		rw := row{wall: median(walls), med: median(running), p95: p95(running), startup: median(startups),
			closing: median(closing), rss: rss, cpu: median(cpus), sys: median(syss), labCPU: median(labCPUs), steps: map[string]time.Duration{}}
		for s, d := range steps {
			rw.steps[s] = median(d)
		}
		rows[size] = rw
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	benchf("warm, %d rounds (medians of the rounds; times in ms):", len(runs[sizes[0]]))
	// floor is the least wall time any schedule of the run's CPU (connect's
	// and the lab's) could take on this machine's CPUs.
	ncpu := time.Duration(runtime.NumCPU())
	floor := func(r row) time.Duration { return (r.cpu + r.labCPU) / ncpu }
	benchf("%6s %7s %8s %8s %9s %8s %8s %9s %7s %10s", "hosts", "wall", "run-med", "run-p95", "peak-RSS", "cpu", "lab-cpu", "close-med", "floor", "wall/floor")
	for _, size := range sizes {
		r := rows[size]
		benchf("%6d %7s %8s %8s %6.1f MB %8s %8s %9s %7s %9.2fx", size, ms(r.wall), ms(r.med), ms(r.p95), float64(r.rss)/1e6, ms(r.cpu), ms(r.labCPU), ms(r.closing),
			ms(floor(r)), float64(r.wall)/float64(floor(r)))
	}
	benchf("per-step medians (ms): %6s %7s %12s %9s %6s %7s %7s", "hosts", "start", "authenticate", "preflight", "deploy", "launch", "checkin")
	for _, size := range sizes {
		r := rows[size]
		benchf("per-step medians (ms): %6d %7s %12s %9s %6s %7s %7s", size, ms(r.startup), ms(r.steps["authenticate"]), ms(r.steps["preflight"]),
			ms(r.steps["deploy"]), ms(r.steps["launch"]), ms(r.steps["checkin"]))
	}
	// Where the CPU went in the largest size's last run.
	big := slices.Max(sizes)
	last := runs[big][len(runs[big])-1]
	var parts []string
	for c, d := range last.labByComm {
		if d >= 10*time.Millisecond {
			parts = append(parts, fmt.Sprintf("%s %v", c, d.Round(time.Millisecond)))
		}
	}
	slices.Sort(parts)
	benchf("CPU of the last %d-host run (wall %v on %d CPUs): connect %v; the lab %v (%s)", big, last.wall.Round(time.Millisecond),
		runtime.NumCPU(), last.cpu.Round(time.Millisecond), last.labCPU.Round(time.Millisecond), strings.Join(parts, ", "))
	one, ok := rows[1]
	if !ok {
		return
	}
	for _, g := range []struct {
		size int
		goal float64
	}{{16, 2.5}, {64, 4}} {
		r, ok := rows[g.size]
		if !ok {
			continue
		}
		ratio := float64(r.wall) / float64(one.wall)
		benchf("goal %d/1 wall: %.2fx (goal <= %.1fx): %s; time to Running p95 %d/1: %.2fx", g.size, ratio, g.goal, verdict(ratio <= g.goal),
			g.size, float64(r.p95)/float64(one.p95))
		// What this machine allows: the run's CPU over its CPUs, against
		// one host's wall; and the same with connect's CPU alone, the
		// bound if every target had CPUs of its own (an upper estimate of
		// connect's share: on the lab's veth links the kernel bills part
		// of the targets' receiving to the sender).
		benchf("floor %d/1 on %d CPUs: %.2fx with the lab's CPU, %.2fx with connect's alone (%v of connect CPU per host beyond the first, %v of it in the kernel)",
			g.size, ncpu, float64(floor(r))/float64(one.wall), float64(r.cpu/ncpu)/float64(one.wall),
			((r.cpu - one.cpu) / time.Duration(g.size-1)).Round(time.Millisecond), ((r.sys - one.sys) / time.Duration(g.size-1)).Round(time.Millisecond))
	}
	if r, ok := rows[64]; ok {
		benchf("goal peak RSS at 64: %.1f MB (goal < 100 MB): %s", float64(r.rss)/1e6, verdict(r.rss < 100e6))
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func p95(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)*95+99)/100-1]
}

// benchf prints one line of the bench's report to standard output,
// prefixed "BENCH": go test keeps only the first lines of a benchmark's
// log.
func benchf(format string, args ...any) {
	fmt.Printf("BENCH "+format+"\n", args...)
}
