package remotereg

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// Launch latency, reported as the median of the iterations (run with
// -benchtime=20x for the median of 20):
//
//	go test -run '^$' -bench 'BenchmarkLaunch' -benchtime=20x ./remotereg/

// benchTarget is labTarget for benchmarks.
func benchTarget(ctx context.Context, b *testing.B, tgt *testlab.Target) target {
	b.Helper()
	s, err := smbconn.Dial(ctx, tgt.Addr.String(), smbconn.Auth{User: tgt.Admin.User, Password: tgt.Admin.Password}, smbconn.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return target{Addr: tgt.Addr.String(), Credentials: labCreds{tgt.Admin},
		OpenPipe: func(ctx context.Context, name string) (net.Conn, error) { return s.OpenPipe(ctx, name) }}
}

func reportMedian(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "ms/median")
	b.ReportMetric(float64(d[0].Microseconds())/1000, "ms/min")
	b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, "ms/max")
}

// BenchmarkLaunchPipeSamba measures the pipe path on Samba's error path:
// open \pipe\svcctl on the existing session, bind sealed, OpenSCManager,
// CreateService answered with nca_op_rng_error (ErrLaunchUnsupported).
func BenchmarkLaunchPipeSamba(b *testing.B) {
	lab := testlab.New(b, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]
	ctx := context.Background()
	tg := benchTarget(ctx, b, tgt)
	spec := deploy.LaunchSpec{Path: `C:\Windows\Temp\x.exe`}
	// Warm up: the first call spawns samba-dcerpcd (about 1 s).
	if _, err := fastLauncher(TransportPipe).launchTarget(ctx, tg, spec, nil); !errors.Is(err, deploy.ErrLaunchUnsupported) {
		b.Fatalf("warm-up: %v", err)
	}
	for _, lvl := range []rpcauth.Level{rpcauth.Privacy, rpcauth.Integrity, rpcauth.None} {
		b.Run(lvl.String(), func(b *testing.B) {
			l := fastLauncher(TransportPipe)
			l.Level = lvl
			var d []time.Duration
			for range b.N {
				start := time.Now()
				_, err := l.launchTarget(ctx, tg, spec, nil)
				d = append(d, time.Since(start))
				if !errors.Is(err, deploy.ErrLaunchUnsupported) {
					b.Fatalf("err = %v", err)
				}
			}
			reportMedian(b, d)
		})
	}
}

// BenchmarkLaunchTCPWinemu measures the TCP path against winemu in a lab
// target: ept_map on 135, bind svcctl sealed on the dynamic port,
// OpenSCManager, CreateService, StartService, wait for SERVICE_RUNNING,
// and mark for deletion. Stopping the applet is not timed.
func BenchmarkLaunchTCPWinemu(b *testing.B) {
	lab := testlab.New(b, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]
	ctx := context.Background()
	bin := buildOnceB(b, "winemu", "../internal/winemu/cmd/winemu")
	b.Setenv("WINEMU_PASSWORD", tgt.Admin.Password)
	p, err := tgt.Start(ctx, bin, "-listen", tgt.Addr.String(), "-root", tgt.AdminDir, "-user", tgt.Admin.User)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Stop() })
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(tgt.Addr.String(), "135"), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("winemu not listening")
		}
	}
	// A sleep that reports running to the emulated SCM, as a service does.
	sleep := []byte("#!/bin/sh\necho running >&\"$" + winemu.ServiceStatusFDEnv + "\"\nexec sleep \"$@\"\n")
	_ = os.MkdirAll(filepath.Join(tgt.AdminDir, "Temp"), 0o755)
	if err := os.WriteFile(filepath.Join(tgt.AdminDir, "Temp", "lcbench.exe"), sleep, 0o755); err != nil {
		b.Fatal(err)
	}
	tg := benchTarget(ctx, b, tgt)
	l := fastLauncher(TransportTCP)
	spec := deploy.LaunchSpec{Path: `C:\Windows\Temp\lcbench.exe`, Args: []string{"300"}}
	var d []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		h, err := l.launchTarget(ctx, tg, spec, nil)
		d = append(d, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := h.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportMedian(b, d)
}

func buildOnceB(b *testing.B, name, pkg string) string {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, name)
	if out, err := execCommand("go", "build", "-o", bin, pkg); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

func execCommand(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}
