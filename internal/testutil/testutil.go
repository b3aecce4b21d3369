package testutil

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
)

var (
	ipMu    sync.Mutex
	usedIPs = map[string]bool{}
)

// LoopbackIP returns an address in 127.0.0.0/8 that no earlier call in this
// process returned (127.20-219.x.y, host part 2 and up). It does not check
// whether another process listens there.
func LoopbackIP() string {
	ipMu.Lock()
	defer ipMu.Unlock()
	for {
		ip := fmt.Sprintf("127.%d.%d.%d", 20+rand.IntN(200), rand.IntN(250), 2+rand.IntN(250))
		if !usedIPs[ip] {
			usedIPs[ip] = true
			return ip
		}
	}
}

// LockedBuffer is a bytes.Buffer that is safe for concurrent Write and
// String: a log destination that tests read while the code writes.
// The zero value is ready to use.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// LoadAvg returns the first three fields of /proc/loadavg (the 1, 5 and 15
// minute load averages), or "unknown". Benchmarks print it next to their
// figures: on a shared machine they mean little without it.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
