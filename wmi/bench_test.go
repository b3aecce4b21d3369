package wmi

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
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
	spec := deploy.LaunchSpec{Path: e.applet, Args: []string{"-token", "bench"}}
	wmiMed, scmMed := measureLaunches(context.Background(), b, e.host, e.admin, spec, 20)
	b.ReportMetric(float64(wmiMed.Microseconds())/1000, "wmi-median-ms")
	b.ReportMetric(float64(scmMed.Microseconds())/1000, "scm-tcp-median-ms")
	b.ReportMetric(float64(wmiMed)/float64(scmMed), "wmi/scm")
}

// measureLaunches launches spec n times through WMI and n times through
// the SCM over TCP, alternating, stopping each applet before the next
// launch, and returns the two median launch latencies. The timing runs
// inside b.Loop, so run it with -benchtime=1x.
func measureLaunches(ctx context.Context, b *testing.B, host string, creds adauth.Credentials, spec deploy.LaunchSpec, n int) (wmiMed, scmMed time.Duration) {
	b.Helper()
	wl := &Launcher{}
	sl := &remotereg.Launcher{Transports: []remotereg.Transport{remotereg.TransportTCP}}
	wt := target{Addr: host, Credentials: creds}
	st := &deploy.Target{Addr: host, Grant: &adauth.Grant{Addr: host, Credentials: creds}}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		if len(d)%2 == 1 {
			return d[len(d)/2]
		}
		return (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	for b.Loop() {
		var wmiT, scmT []time.Duration
		for range n {
			start := time.Now()
			h, err := wl.launchTarget(ctx, wt, spec)
			wmiT = append(wmiT, time.Since(start))
			if err != nil {
				b.Fatalf("wmi launch: %v", err)
			}
			if err := h.Stop(ctx); err != nil {
				b.Fatalf("wmi stop: %v", err)
			}
			start = time.Now()
			sh, err := sl.Launch(ctx, st, spec)
			scmT = append(scmT, time.Since(start))
			if err != nil {
				b.Fatalf("scm launch: %v", err)
			}
			if err := sh.Stop(ctx); err != nil {
				b.Fatalf("scm stop: %v", err)
			}
		}
		wmiMed, scmMed = median(wmiT), median(scmT)
	}
	return wmiMed, scmMed
}
