package testutil

import (
	"bytes"
	"fmt"
	"math/rand/v2"
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
