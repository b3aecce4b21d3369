package wmi

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/remotereg"
)

// BenchmarkWMILaunch measures the launch latency through WMI against the
// SCM over TCP (remotereg's ncacn_ip_tcp transport through the endpoint
// mapper) on the same in-process emulator: 20 launches of each, each
// stopped before the next, reporting both medians and their ratio. Run
// with -benchtime=1x (each iteration is 20+20 launches).
func BenchmarkWMILaunch(b *testing.B) {
	e := startEmu(b)
	ctx := context.Background()
	spec := deploy.LaunchSpec{Path: e.applet, Args: []string{"-token", "bench"}}
	const n = 20
	wl := &Launcher{}
	sl := &remotereg.Launcher{Transports: []remotereg.Transport{remotereg.TransportTCP}}
	st := remotereg.Target{Host: e.host, Credentials: e.admin}
	var wmiMed, scmMed time.Duration
	for b.Loop() {
		var wmiT, scmT []time.Duration
		for range n {
			start := time.Now()
			h, err := wl.LaunchTarget(ctx, e.target(), spec)
			wmiT = append(wmiT, time.Since(start))
			if err != nil {
				b.Fatalf("wmi launch: %v", err)
			}
			if err := h.Stop(ctx); err != nil {
				b.Fatalf("wmi stop: %v", err)
			}
			start = time.Now()
			sh, err := sl.LaunchTarget(ctx, st, spec, nil)
			scmT = append(scmT, time.Since(start))
			if err != nil {
				b.Fatalf("scm launch: %v", err)
			}
			if err := sh.Stop(ctx); err != nil {
				b.Fatalf("scm stop: %v", err)
			}
		}
		slices.Sort(wmiT)
		slices.Sort(scmT)
		wmiMed = (wmiT[n/2-1] + wmiT[n/2]) / 2
		scmMed = (scmT[n/2-1] + scmT[n/2]) / 2
	}
	b.ReportMetric(float64(wmiMed.Microseconds())/1000, "wmi-median-ms")
	b.ReportMetric(float64(scmMed.Microseconds())/1000, "scm-tcp-median-ms")
	b.ReportMetric(float64(wmiMed)/float64(scmMed), "wmi/scm")
}
