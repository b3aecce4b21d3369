//go:build lanconnect_memprofile

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// This file is built only with -tags lanconnect_memprofile (the bulk
// bench's LANCONNECT_BENCH_MEMPROFILE sets it); the connect that ships has
// no such knob. With LANCONNECT_MEMPROFILE=dir it samples the runtime's
// memory every 10 ms and, each time the memory the runtime holds (mapped
// minus released to the OS) reaches a new peak by 1 MiB or more, writes
// to dir a heap profile (heap.pprof), the goroutines (goroutines.txt) and
// the runtime's memory classes with the process's RSS (peak.txt). The
// files are of the last peak when the process exits. It does not force a
// GC: the heap profile is as of the last completed cycle.
func init() {
	dir := os.Getenv("LANCONNECT_MEMPROFILE")
	if dir == "" {
		return
	}
	runtime.MemProfileRate = 32 << 10
	go sampleMemory(dir)
}

func sampleMemory(dir string) {
	names := []string{
		"/memory/classes/total:bytes",
		"/memory/classes/heap/released:bytes",
		"/memory/classes/heap/objects:bytes",
		"/memory/classes/heap/unused:bytes",
		"/memory/classes/heap/free:bytes",
		"/memory/classes/heap/stacks:bytes",
		"/memory/classes/os-stacks:bytes",
		"/memory/classes/metadata/other:bytes",
		"/memory/classes/other:bytes",
		"/memory/classes/profiling/buckets:bytes",
		"/gc/heap/goal:bytes",
		"/gc/heap/live:bytes",
		"/gc/cycles/total:gc-cycles",
		"/gc/heap/allocs:bytes",
		"/sched/goroutines:goroutines",
	}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	var peak uint64
	for range time.Tick(10 * time.Millisecond) {
		metrics.Read(samples)
		held := samples[0].Value.Uint64() - samples[1].Value.Uint64()
		if held < peak+1<<20 {
			continue
		}
		peak = held
		var b bytes.Buffer
		fmt.Fprintf(&b, "held (total - released): %d\n", held)
		if statm, err := os.ReadFile("/proc/self/status"); err == nil {
			for _, l := range bytes.Split(statm, []byte("\n")) {
				if bytes.HasPrefix(l, []byte("VmRSS")) || bytes.HasPrefix(l, []byte("VmHWM")) || bytes.HasPrefix(l, []byte("Rss")) {
					fmt.Fprintf(&b, "%s\n", l)
				}
			}
		}
		for _, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				fmt.Fprintf(&b, "%s %d\n", s.Name, s.Value.Uint64())
			}
		}
		_ = os.WriteFile(filepath.Join(dir, "peak.txt"), b.Bytes(), 0o644)
		b.Reset()
		_ = pprof.Lookup("heap").WriteTo(&b, 0)
		_ = os.WriteFile(filepath.Join(dir, "heap.pprof"), b.Bytes(), 0o644)
		b.Reset()
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		_ = os.WriteFile(filepath.Join(dir, "goroutines.txt"), b.Bytes(), 0o644)
	}
}
