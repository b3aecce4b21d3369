package testlab

import (
	"context"
	"testing"
	"time"
)

// benchStart starts and closes a lab b.N times and reports the mean
// start-up and teardown times, and of the start-up the network's and the
// targets' parts.
func benchStart(b *testing.B, opts Options) {
	if err := Available(); err != nil {
		b.Skip(err)
	}
	if opts.DC != nil {
		if err := AvailableDC(); err != nil {
			b.Skip(err)
		}
		// Warm the template cache outside the measurement.
		l, err := Start(context.Background(), opts)
		if err != nil {
			b.Fatal(err)
		}
		_ = l.Close()
	}
	var start, close, network, targets time.Duration
	b.ResetTimer()
	for b.Loop() {
		l, err := Start(context.Background(), opts)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		tm := l.Timings()
		start += tm.Start
		close += tm.Close
		network += tm.Network
		targets += tm.Targets
	}
	b.ReportMetric(float64(start.Milliseconds())/float64(b.N), "start-ms/op")
	b.ReportMetric(float64(close.Milliseconds())/float64(b.N), "close-ms/op")
	b.ReportMetric(float64(network.Milliseconds())/float64(b.N), "network-ms/op")
	b.ReportMetric(float64(targets.Milliseconds())/float64(b.N), "targets-ms/op")
}

func BenchmarkStartOneTarget(b *testing.B) {
	benchStart(b, Options{Targets: []TargetSpec{{}}})
}

func BenchmarkStartFourTargets(b *testing.B) {
	benchStart(b, Options{Targets: []TargetSpec{{}, {}, {}, {}}})
}

func BenchmarkStartDC(b *testing.B) {
	benchStart(b, Options{DC: &DCSpec{}})
}

func BenchmarkStartDC2000Computers(b *testing.B) {
	benchStart(b, Options{DC: &DCSpec{Computers: 2000}})
}

// BenchmarkStartKerberosLab is the Kerberos lab: a DC with NTLM disabled
// and one joined member that refuses NTLM.
func BenchmarkStartKerberosLab(b *testing.B) {
	benchStart(b, Options{DC: &DCSpec{NoNTLM: true}, Targets: []TargetSpec{{DomainMember: true, Variant: NTLMDisabled}}})
}

// BenchmarkStart64Targets is the lab of `make bench-bulk`: 64 targets,
// each with smbd and nmbd (the bench adds a winemu per target).
func BenchmarkStart64Targets(b *testing.B) {
	benchStart(b, Options{Targets: make([]TargetSpec, 64)})
}
