package testlab

import (
	"context"
	"testing"
	"time"
)

// benchStart starts and closes a lab b.N times and reports the mean
// start-up and teardown times.
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
	var start, close time.Duration
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
	}
	b.ReportMetric(float64(start.Milliseconds())/float64(b.N), "start-ms/op")
	b.ReportMetric(float64(close.Milliseconds())/float64(b.N), "close-ms/op")
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
