package winemu_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

// BenchmarkSCMLaunch measures one full launch as the SDK's TCP fallback
// does it: resolve svcctl through the endpoint mapper on 135, bind with
// NTLM at privacy, open the SCM, create a service, start it (a real
// process), query until RUNNING, stop it, delete it and close. It
// reports the median cycle as ms/median; run with -benchtime=20x for the
// median of 20 cycles. "loopback" serves in-process on 127.x.y.z;
// "lab" runs the winemu binary in a lab target's namespace and crosses
// the lab bridge (skipped when the lab is unavailable).
func BenchmarkSCMLaunch(b *testing.B) {
	b.Run("loopback", func(b *testing.B) {
		e := startServer(b)
		e.installSleeper(b, "LCApplet.exe")
		benchLaunch(b, e, adminUser, adminPass)
		if n := len(e.srv.SCM().Services()); n != 0 {
			b.Fatalf("%d services left", n)
		}
	})
	b.Run("lab", func(b *testing.B) {
		tgt, _ := startLabWinemu(b)
		e := &env{ip: tgt.Addr.String(), root: tgt.AdminDir}
		benchLaunch(b, e, tgt.Admin.User, tgt.Admin.Password)
	})
}

func benchLaunch(b *testing.B, e *env, user, pass string) {
	ctx := context.Background()
	var cycles []time.Duration
	for b.Loop() {
		start := time.Now()
		cli, done := e.dialSCM(ctx, b, user, pass, dcerpc.AuthLevelPktPrivacy)
		scm := openSCM(ctx, b, cli, scManagerConnect|scManagerCreateService)
		svc, code := createService(ctx, b, cli, scm, "LCBench", `C:\Windows\Temp\LCApplet.exe 60`)
		if code != 0 {
			b.Fatalf("create: %d", code)
		}
		if r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc}); err != nil || r.Return != 0 {
			b.Fatalf("start: %v", err)
		}
		for queryState(ctx, b, cli, svc) != winemu.ServiceRunning {
		}
		if r, err := cli.ControlService(ctx, &svcctl.ControlServiceRequest{Service: svc, Control: controlStop}); err != nil || r.Return != 0 {
			b.Fatalf("stop: %v", err)
		}
		if r, err := cli.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: svc}); err != nil || r.Return != 0 {
			b.Fatalf("delete: %v", err)
		}
		closeHandle(ctx, b, cli, svc)
		closeHandle(ctx, b, cli, scm)
		done()
		cycles = append(cycles, time.Since(start))
	}
	slices.Sort(cycles)
	b.ReportMetric(float64(cycles[len(cycles)/2].Microseconds())/1000, "ms/median")
}
