package winemu_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/credential"

	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// startLabWinemu starts a one-target lab and runs the go-built winemu
// binary inside the target's namespace with Root = its ADMIN$ directory
// and the target's administrator account; LCApplet.exe (a sleep that
// reports running to the SCM, sleeperScript) is installed under Temp.
func startLabWinemu(t testing.TB) (*testlab.Target, *testlab.Process) {
	t.Helper()
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]

	bin := filepath.Join(t.TempDir(), "winemu")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/winemu").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sleep := sleeperScript(t)
	if err := os.MkdirAll(filepath.Join(tgt.AdminDir, "Temp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tgt.AdminDir, "Temp", "LCApplet.exe"), sleep, 0o755); err != nil {
		t.Fatal(err)
	}

	// The password reaches winemu through its environment only.
	t.Setenv("WINEMU_PASSWORD", tgt.Admin.Password)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := tgt.Start(ctx, bin, "-listen", tgt.Addr.String(), "-root", tgt.AdminDir,
		"-user", tgt.Admin.User, "-name", tgt.NetBIOSName, "-workgroup", tgt.Workgroup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	addr := net.JoinHostPort(tgt.Addr.String(), "135")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("winemu not listening on %s: %v", addr, err)
		}
	}
	return tgt, p
}

// TestLabTarget runs the go-built winemu binary inside a lab target's
// network namespace with Root = the target's ADMIN$ directory, and
// launches a service through the endpoint mapper on the target's
// address, as the SDK's TCP fallback does.
func TestLabTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	tgt, p := startLabWinemu(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ip := tgt.Addr.String()
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+ip, epm.EndpointMapper(ctx, ip, dcerpc.WithInsecure()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close(ctx)
	cli, err := svcctl.NewSvcctlClient(ctx, cc, dcerpc.WithSeal(), dcerpc.WithMechanism(ssp.NTLM),
		dcerpc.WithCredentials(credential.NewFromPassword(tgt.Admin.User, tgt.Admin.Password)))
	if err != nil {
		t.Fatal(err)
	}
	scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
	marker := fmt.Sprintf("%d", 70000+rand.IntN(9999))
	svc, code := createService(ctx, t, cli, scm, "LCLabTest", `%SystemRoot%\Temp\lcapplet.exe `+marker)
	if code != 0 {
		t.Fatalf("CreateService = %d", code)
	}
	if r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc}); err != nil || r.Return != 0 {
		t.Fatalf("StartService: %v", err)
	}
	if st := queryState(ctx, t, cli, svc); st != winemu.ServiceRunning {
		t.Fatalf("state %d", st)
	}
	pids := waitProcs("LCApplet.exe " + marker)
	if len(pids) != 1 {
		t.Fatalf("applet processes: %v", pids)
	}
	// It runs in the target's network namespace, next to winemu.
	appNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pids[0]))
	emuNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.Pid()))
	selfNS, _ := os.Readlink("/proc/self/ns/net")
	if appNS == "" || appNS != emuNS || appNS == selfNS {
		t.Fatalf("applet netns %q, winemu %q, test %q", appNS, emuNS, selfNS)
	}
	if r, err := cli.ControlService(ctx, &svcctl.ControlServiceRequest{Service: svc, Control: controlStop}); err != nil || r.Return != 0 {
		t.Fatalf("stop: %v", err)
	}
	if r, err := cli.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: svc}); err != nil || r.Return != 0 {
		t.Fatalf("delete: %v", err)
	}
	if len(findProcs(marker)) != 0 {
		t.Fatal("applet still running after stop")
	}
}
