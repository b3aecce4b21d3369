package adauth

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestDirectoryBench compares our dump of every enabled computer with
// `ldapsearch -E pr=1000/noprompt` of the same filter and attributes
// against the same lab DC, in one run. It runs only when
// LANCONNECT_BENCH_LDAP=1 (scripts/bench-ldap.sh sets it), because loading
// 10,000 computers takes a minute or two.
//
// Environment: LANCONNECT_BENCH_COMPUTERS (default 10000) and
// LANCONNECT_BENCH_RUNS (default 5, alternating, after one warm-up each).
func TestDirectoryBench(t *testing.T) {
	if os.Getenv("LANCONNECT_BENCH_LDAP") != "1" {
		t.Skip("set LANCONNECT_BENCH_LDAP=1 (scripts/bench-ldap.sh) to run the LDAP benchmark")
	}
	computers := envInt(t, "LANCONNECT_BENCH_COMPUTERS", 10000)
	runs := envInt(t, "LANCONNECT_BENCH_RUNS", 5)
	ldapsearch, err := exec.LookPath("ldapsearch")
	if err != nil {
		t.Fatalf("ldapsearch not installed (apt-get install ldap-utils): %v", err)
	}

	if err := testlab.AvailableDC(); err != nil {
		t.Fatalf("lab unavailable: %v", err)
	}
	// testlab.New allows 5 minutes; bulk-loading 10,000 computers on a
	// busy machine can take longer.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	stdbuf, _ := exec.LookPath("stdbuf") // coreutils; optional
	lab, err := testlab.Start(ctx, testlab.Options{DC: &testlab.DCSpec{Computers: computers}})
	cancel()
	if err != nil {
		t.Fatalf("lab start: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	t.Logf("lab %s: %v", lab.ID, lab.Timings())
	dc := lab.DC
	admin, err := Parse(dc.Admin.User+"@"+strings.ToLower(dc.Realm), dc.Admin.Password)
	if err != nil {
		t.Fatal(err)
	}
	wantCount := 1 // the DC's own computer object
	for _, c := range dc.Computers {
		if c.Enabled {
			wantCount++
		}
	}
	// The lab's list of computers is not ours to measure: drop it before
	// measuring heap.
	dc.Computers = nil
	dcAddr, dcHost, caPool, caFile, baseDN := dc.Addr, dc.Hostname, dc.CAPool, dc.CAFile, dc.BaseDN
	url := "ldaps://" + netip.AddrPortFrom(dcAddr, 636).String()

	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(dc.Admin.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	filter := computerFilter("", false)
	args := append([]string{"-LLL", "-x", "-H", url, "-D", simpleBindName(admin), "-y", pwFile,
		"-b", baseDN, "-s", "sub", "-E", "pr=1000/noprompt", filter}, computerAttributes...)

	dir := &Directory{
		URL:         url,
		ServerName:  dcHost,
		RootCAs:     caPool,
		Credentials: admin,
		SkipResolve: true, // ldapsearch resolves nothing either
	}

	ours := func() benchResult {
		runtime.GC()
		stop := sampleHeap()
		ctx := context.Background()
		out := make(chan discovery.Host, 64)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- dir.Discover(ctx, out) }()
		var r benchResult
		for {
			select {
			case <-out:
				if r.count == 0 {
					r.first = time.Since(start)
				}
				r.count++
				continue
			case err := <-done:
				// Discover has returned, so nothing more is sent; what
				// is still buffered counts.
				for len(out) > 0 {
					<-out
					r.count++
				}
				r.total = time.Since(start)
				r.peakHeap = stop()
				if err != nil {
					t.Fatalf("Discover: %v", err)
				}
			}
			break
		}
		return r
	}
	theirs := func() benchResult {
		// ldapsearch writes through stdio: unless stdout is line
		// buffered, its first entry reaches the pipe only with the first
		// full buffer.
		cmd := exec.Command(ldapsearch, args...)
		if stdbuf != "" {
			cmd = exec.Command(stdbuf, append([]string{"-oL", ldapsearch}, args...)...)
		}
		cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+caFile, "LDAPTLS_REQCERT=demand", "LDAPCONF=/dev/null", "LDAPRC=/dev/null")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		var r benchResult
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "dn: ") {
				if r.count == 0 {
					r.first = time.Since(start)
				}
				r.count++
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("ldapsearch: %v: %s", err, stderr.String())
		}
		r.total = time.Since(start)
		return r
	}

	// Warm up both (Samba's caches), then alternate.
	if r := theirs(); r.count != wantCount {
		t.Fatalf("ldapsearch found %d computers, want %d", r.count, wantCount)
	}
	if r := ours(); r.count != wantCount {
		t.Fatalf("we found %d computers, want %d", r.count, wantCount)
	}
	var us, them []benchResult
	for range runs {
		them = append(them, theirs())
		us = append(us, ours())
	}
	for i := range runs {
		if us[i].count != wantCount || them[i].count != wantCount {
			t.Fatalf("run %d: we found %d computers, ldapsearch %d, want %d", i, us[i].count, them[i].count, wantCount)
		}
	}
	u, th := median(us), median(them)
	peak := slices.MaxFunc(us, func(a, b benchResult) int { return int(a.peakHeap - b.peakHeap) }).peakHeap
	ratio := float64(u.total) / float64(th.total)
	report := fmt.Sprintf(`LDAP dump of %d enabled computers (lab with %d), LDAPS, simple bind, page size 1000, median of %d runs
  ours:        total %8v   first entry %8v   peak heap %.1f MB (max over runs)
  ldapsearch:  total %8v   first entry %8v
  ratio ours/ldapsearch total time: %.2fx (target <= 1.20x); peak heap target < 30 MB
`, wantCount, computers, runs,
		u.total.Round(time.Millisecond), u.first.Round(time.Millisecond), float64(peak)/(1<<20),
		th.total.Round(time.Millisecond), th.first.Round(time.Millisecond), ratio)
	fmt.Print(report)
	t.Log("\n" + report)
	if ratio > 1.2 {
		t.Errorf("total time %.2fx ldapsearch, target 1.2x", ratio)
	}
	if peak >= 30<<20 {
		t.Errorf("peak heap %d bytes, target < 30 MB", peak)
	}
}

type benchResult struct {
	count    int
	first    time.Duration
	total    time.Duration
	peakHeap uint64
}

func median(rs []benchResult) benchResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b benchResult) int { return int(a.total - b.total) })
	return s[len(s)/2]
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q is not a positive number", name, v)
	}
	return n
}

// sampleHeap samples the in-use heap (live and not yet swept objects plus
// free space in in-use spans: MemStats.HeapInuse) every millisecond through
// runtime/metrics, which does not stop the world, until the returned
// function is called; that returns the peak.
func sampleHeap() func() uint64 {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	var (
		mu   sync.Mutex
		peak uint64
	)
	read := func() {
		metrics.Read(samples)
		v := samples[0].Value.Uint64() + samples[1].Value.Uint64()
		mu.Lock()
		peak = max(peak, v)
		mu.Unlock()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			read()
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		read()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
