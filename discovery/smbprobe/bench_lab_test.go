//go:build benchsmb

package smbprobe

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestBenchSMBProbe probes the lab /24 (targets, the DC and empty
// addresses) with our Discoverer and, in the same run, with nmap's
// smb-os-discovery script when nmap is installed, and prints wall times,
// hosts found and the ratio. Run it with scripts/bench-smb.sh.
func TestBenchSMBProbe(t *testing.T) {
	lab := testlab.New(t, testlab.Options{
		Targets: []testlab.TargetSpec{{}, {}, {}, {}, {Variant: testlab.SigningMandatory}, {}},
		DC:      &testlab.DCSpec{},
	})
	from, to := lab.Prefix.Masked().Addr().Next(), lastAddr(lab.Prefix)
	want := len(lab.Targets) + 1
	const rounds = 3
	var ours []time.Duration
	for r := 0; r < rounds; r++ {
		d := &Discoverer{
			Targets: []discovery.AddrRange{{From: from, To: to}},
			Prober:  Prober{Timeout: time.Second},
			Rate:    2000, Concurrency: 256,
		}
		out := make(chan discovery.Host, 64)
		start := time.Now()
		var first time.Duration
		go func() { _ = d.Discover(context.Background(), out); close(out) }()
		n := 0
		for range out {
			if n == 0 {
				first = time.Since(start)
			}
			n++
		}
		el := time.Since(start)
		ours = append(ours, el)
		t.Logf("ours  round %d: wall %v, first host %v, hosts %d/%d", r+1, el.Round(time.Millisecond), first.Round(time.Microsecond), n, want)
		if n != want {
			t.Errorf("found %d hosts, want %d", n, want)
		}
	}
	mo := median(ours)
	fmt.Printf("smbprobe: /24 with %d hosts, median of %d: ours %v\n", want, rounds, mo.Round(time.Millisecond))
	if _, err := exec.LookPath("nmap"); err != nil {
		fmt.Println("smbprobe: nmap is not installed (apt-get install nmap), no peer figure")
		return
	}
	var theirs []time.Duration
	for r := 0; r < rounds; r++ {
		start := time.Now()
		out, err := exec.Command("nmap", "-n", "-Pn", "-p445", "--open", "--host-timeout", "5s",
			"--script", "smb-os-discovery,smb2-security-mode", lab.Prefix.String()).CombinedOutput()
		el := time.Since(start)
		if err != nil {
			t.Fatalf("nmap: %v\n%s", err, out)
		}
		theirs = append(theirs, el)
		open := strings.Count(string(out), "445/tcp open")
		t.Logf("nmap  round %d: wall %v, hosts with 445 open %d", r+1, el.Round(time.Millisecond), open)
	}
	mt := median(theirs)
	fmt.Printf("smbprobe: nmap -p445 --script smb-os-discovery,smb2-security-mode: %v; ours/nmap = %.2f\n",
		mt.Round(time.Millisecond), float64(mo)/float64(mt))
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
