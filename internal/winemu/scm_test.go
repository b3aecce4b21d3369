package winemu_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	"github.com/oiweiwei/go-msrpc/ssp"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

const (
	scManagerConnect       = 0x0001
	scManagerCreateService = 0x0002
	serviceAllAccess       = 0x000f01ff
	serviceStart           = 0x0010
	serviceQueryStatus     = 0x0004
	serviceWin32OwnProcess = 0x10
	serviceDemandStart     = 3
	controlStop            = 1
)

type secLevel struct {
	name  string
	level dcerpc.AuthLevel
	mechs []dcerpc.Option
}

func levels() []secLevel {
	spnego := []dcerpc.Option{dcerpc.WithMechanism(ssp.SPNEGO), dcerpc.WithMechanism(ssp.NTLM)}
	return []secLevel{
		{"connect", dcerpc.AuthLevelConnect, nil},
		{"sign", dcerpc.AuthLevelPktIntegrity, nil},
		{"seal", dcerpc.AuthLevelPktPrivacy, nil},
		{"spnego-sign", dcerpc.AuthLevelPktIntegrity, spnego},
		{"spnego-seal", dcerpc.AuthLevelPktPrivacy, spnego},
	}
}

func openSCM(ctx context.Context, t testing.TB, cli svcctl.SvcctlClient, access uint32) *svcctl.Handle {
	t.Helper()
	resp, err := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: access})
	if err != nil {
		t.Fatalf("OpenSCManagerW: %v", err)
	}
	if resp.Return != 0 {
		t.Fatalf("OpenSCManagerW returned %d", resp.Return)
	}
	return resp.SCM
}

func createService(ctx context.Context, t testing.TB, cli svcctl.SvcctlClient, scm *svcctl.Handle, name, path string) (*svcctl.Handle, uint32) {
	t.Helper()
	resp, err := cli.CreateServiceW(ctx, &svcctl.CreateServiceWRequest{
		ServiceManager: scm,
		ServiceName:    name,
		DisplayName:    name + " display",
		DesiredAccess:  serviceAllAccess,
		ServiceType:    serviceWin32OwnProcess,
		StartType:      serviceDemandStart,
		BinaryPathName: path,
	})
	if resp == nil {
		t.Fatalf("CreateServiceW: %v", err)
	}
	return resp.Service, resp.Return
}

func queryState(ctx context.Context, t testing.TB, cli svcctl.SvcctlClient, h *svcctl.Handle) uint32 {
	t.Helper()
	resp, err := cli.QueryServiceStatus(ctx, &svcctl.QueryServiceStatusRequest{Service: h})
	if err != nil {
		t.Fatalf("QueryServiceStatus: %v", err)
	}
	if resp.Return != 0 {
		t.Fatalf("QueryServiceStatus returned %d", resp.Return)
	}
	return resp.ServiceStatus.CurrentState
}

func closeHandle(ctx context.Context, t testing.TB, cli svcctl.SvcctlClient, h *svcctl.Handle) {
	t.Helper()
	resp, err := cli.CloseService(ctx, &svcctl.CloseServiceRequest{ServiceObject: h})
	if err != nil || resp.Return != 0 {
		t.Fatalf("CloseServiceHandle: %v / %d", err, rc(resp))
	}
}

func TestSCMLifecycleThroughEndpointMapper(t *testing.T) {
	for _, lv := range levels() {
		t.Run(lv.name, func(t *testing.T) {
			checkLeaks(t)
			e := startServer(t)
			exe := e.installSleeper(t, "LCApplet.exe")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cli, done := e.dialSCM(ctx, t, adminUser, adminPass, lv.level, lv.mechs...)
			defer done()

			scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
			// Mixed case and quoting: the path resolves case-insensitively.
			svc, code := createService(ctx, t, cli, scm, "LCTest1", `"C:\WINDOWS\temp\lcapplet.EXE" 60`)
			if code != 0 {
				t.Fatalf("CreateServiceW returned %d", code)
			}
			if st := queryState(ctx, t, cli, svc); st != winemu.ServiceStopped {
				t.Fatalf("state before start = %d, want STOPPED", st)
			}
			sresp, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc})
			if err != nil || sresp.Return != 0 {
				t.Fatalf("StartServiceW: %v / %d", err, rc(sresp))
			}
			if st := queryState(ctx, t, cli, svc); st != winemu.ServiceRunning {
				t.Fatalf("state after start = %d, want RUNNING", st)
			}
			infos := e.srv.SCM().Services()
			if len(infos) != 1 || infos[0].PID == 0 {
				t.Fatalf("service table = %+v", infos)
			}
			pid := infos[0].PID
			ex, err := cli.QueryServiceStatusEx(ctx, &svcctl.QueryServiceStatusExRequest{Service: svc, BufferLength: 36})
			if err != nil || ex.Return != 0 || len(ex.Buffer) != 36 {
				t.Fatalf("QueryServiceStatusEx: %v / %+v", err, ex)
			}
			if got := binary.LittleEndian.Uint32(ex.Buffer[28:]); got != uint32(pid) {
				t.Fatalf("QueryServiceStatusEx PID %d, want %d", got, pid)
			}
			args, ok := waitExec(pid, exe)
			if !ok {
				t.Fatalf("process %d is not running", pid)
			}
			if args[0] != exe || len(args) != 2 || args[1] != "60" {
				t.Fatalf("process %d runs %q, want [%s 60]", pid, args, exe)
			}

			cresp, err := cli.ControlService(ctx, &svcctl.ControlServiceRequest{Service: svc, Control: controlStop})
			if err != nil || cresp.Return != 0 {
				t.Fatalf("ControlService(stop): %v / %d", err, rc(cresp))
			}
			if cresp.ServiceStatus.CurrentState != winemu.ServiceStopped {
				t.Fatalf("state after stop = %d", cresp.ServiceStatus.CurrentState)
			}
			if _, ok := procCmdline(pid); ok {
				t.Fatalf("process %d still running after stop", pid)
			}
			dresp, err := cli.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: svc})
			if err != nil || dresp.Return != 0 {
				t.Fatalf("DeleteService: %v / %d", err, rc(dresp))
			}
			// Marked for delete while a handle is open, like Windows.
			if infos := e.srv.SCM().Services(); len(infos) != 1 || !infos[0].MarkedForDelete {
				t.Fatalf("after delete with open handle: %+v", infos)
			}
			closeHandle(ctx, t, cli, svc)
			closeHandle(ctx, t, cli, scm)
			if infos := e.srv.SCM().Services(); len(infos) != 0 {
				t.Fatalf("service table not empty: %+v", infos)
			}
			logs := e.logs.String()
			auth := "auth=10"
			if lv.mechs != nil {
				auth = "auth=9"
			}
			for _, want := range []string{"iface=epm", "iface=svcctl op=RCreateServiceW", "op=RStartServiceW", "user=" + adminUser + " " + auth + " level=" + strconv.Itoa(int(lv.level))} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, adminPass) {
				t.Fatal("password in logs")
			}
		})
	}
}

func TestWrongPasswordFaultsNextRequest(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, closeFn, err := e.tryDialSCM(ctx, adminUser, "wrong", dcerpc.AuthLevelPktPrivacy)
	if err != nil {
		// The client may also learn it at bind time; either is a refusal.
		t.Logf("dial refused: %v", err)
		return
	}
	defer closeFn()
	_, err = cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: scManagerConnect})
	if err == nil {
		t.Fatal("OpenSCManagerW succeeded with a wrong password")
	}
	if code, ok := faultCode(err); !ok || code != 5 {
		t.Fatalf("error %v: fault code %#x (found %v), want 5", err, code, ok)
	}
	if !strings.Contains(e.logs.String(), "authentication failed") {
		t.Errorf("no authentication failure logged:\n%s", e.logs.String())
	}
}

// With SPNEGO the last leg is an alter_context, so a wrong password is
// refused before the first request.
func TestWrongPasswordSPNEGO(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, closeFn, err := e.tryDialSCM(ctx, adminUser, "wrong", dcerpc.AuthLevelPktPrivacy, dcerpc.WithMechanism(ssp.SPNEGO), dcerpc.WithMechanism(ssp.NTLM))
	if err == nil {
		closeFn()
		t.Fatal("SPNEGO bind succeeded with a wrong password")
	}
	if !strings.Contains(e.logs.String(), "authentication failed") {
		t.Errorf("no authentication failure logged:\n%s", e.logs.String())
	}
}

func TestNonAdminAccessDenied(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	e.installSleeper(t, "app.exe")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	admin, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	ascm := openSCM(ctx, t, admin, scManagerConnect|scManagerCreateService)
	asvc, code := createService(ctx, t, admin, ascm, "LCShared", `C:\Windows\Temp\app.exe 60`)
	if code != 0 {
		t.Fatalf("CreateServiceW = %d", code)
	}

	user, done2 := e.dialSCM(ctx, t, plainUser, plainPass, dcerpc.AuthLevelPktPrivacy)
	defer done2()
	resp, err := user.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: scManagerConnect | scManagerCreateService})
	if resp == nil {
		t.Fatal(err)
	}
	if resp.Return != winemu.ErrorAccessDenied {
		t.Fatalf("non-admin OpenSCManager(CREATE_SERVICE) = %d, want 5", resp.Return)
	}
	uscm := openSCM(ctx, t, user, scManagerConnect)
	oresp, err := user.OpenServiceW(ctx, &svcctl.OpenServiceWRequest{ServiceManager: uscm, ServiceName: "LCShared", DesiredAccess: serviceStart})
	if oresp == nil {
		t.Fatal(err)
	}
	if oresp.Return != winemu.ErrorAccessDenied {
		t.Fatalf("non-admin OpenService(START) = %d, want 5", oresp.Return)
	}
	qresp, err := user.OpenServiceW(ctx, &svcctl.OpenServiceWRequest{ServiceManager: uscm, ServiceName: "lcshared", DesiredAccess: serviceQueryStatus})
	if err != nil || qresp.Return != 0 {
		t.Fatalf("non-admin OpenService(QUERY_STATUS): %v / %d", err, rc(qresp))
	}
	// The query-only handle cannot start the service.
	sresp, err := user.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: qresp.Service})
	if sresp == nil {
		t.Fatal(err)
	}
	if sresp.Return != winemu.ErrorAccessDenied {
		t.Fatalf("StartService on a query handle = %d, want 5", sresp.Return)
	}
	closeHandle(ctx, t, user, qresp.Service)
	closeHandle(ctx, t, user, uscm)

	// Deny mode refuses even the administrator.
	e.srv.Faults.SetDeny(true)
	resp, err = admin.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: scManagerConnect})
	if resp == nil || resp.Return != winemu.ErrorAccessDenied {
		t.Fatalf("Deny: OpenSCManager = %v / %d, want 5", err, rc(resp))
	}
	if _, code := createService(ctx, t, admin, ascm, "LCDenied", `C:\Windows\Temp\app.exe`); code != winemu.ErrorAccessDenied {
		t.Fatalf("Deny: CreateService = %d, want 5", code)
	}
	e.srv.Faults.SetDeny(false)
	dresp, err := admin.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: asvc})
	if err != nil || dresp.Return != 0 {
		t.Fatalf("DeleteService: %v / %d", err, rc(dresp))
	}
}

func TestDuplicateServiceName(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktIntegrity)
	defer done()
	scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
	svc, code := createService(ctx, t, cli, scm, "LCDup", `C:\Windows\Temp\x.exe`)
	if code != 0 {
		t.Fatalf("first CreateService = %d", code)
	}
	if _, code := createService(ctx, t, cli, scm, "lcdup", `C:\Windows\Temp\y.exe`); code != winemu.ErrorServiceExists {
		t.Fatalf("duplicate CreateService = %d, want 1073", code)
	}
	if r, err := cli.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: svc}); err != nil || r.Return != 0 {
		t.Fatalf("DeleteService: %v", err)
	}
	if _, code := createService(ctx, t, cli, scm, "LCDup", `C:\Windows\Temp\y.exe`); code != winemu.ErrorServiceMarkedForDelete {
		t.Fatalf("CreateService while marked for delete = %d, want 1072", code)
	}
	if r, err := cli.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: svc}); r == nil || r.Return != winemu.ErrorServiceMarkedForDelete {
		t.Fatalf("second DeleteService = %v / %d, want 1072", err, rc(r))
	}
	// Closing the connection runs down its handles, which removes the service.
	done()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.srv.SCM().Services()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("service not removed after rundown: %+v", e.srv.SCM().Services())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServiceDidNotStart(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	e.installSleeper(t, "slow.exe")
	marker := fmt.Sprintf("%d", 86400+time.Now().UnixNano()%1000)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
	svc, code := createService(ctx, t, cli, scm, "LCSlow", `C:\Windows\Temp\slow.exe `+marker)
	if code != 0 {
		t.Fatal(code)
	}
	e.srv.Faults.SetServiceDidNotStart(true)
	sresp, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc})
	if sresp == nil {
		t.Fatal(err)
	}
	if sresp.Return != winemu.ErrorServiceRequestTimeout {
		t.Fatalf("StartService = %d, want 1053", sresp.Return)
	}
	if st := queryState(ctx, t, cli, svc); st != winemu.ServiceStopped {
		t.Fatalf("state = %d, want STOPPED", st)
	}
	if pids := findProcs(marker); len(pids) != 0 {
		t.Fatalf("process left running: %v", pids)
	}
	e.srv.Faults.SetServiceDidNotStart(false)
	if r, err := cli.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: svc}); err != nil || r.Return != 0 {
		t.Fatal(err)
	}
}

func TestStartServiceErrors(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	e.installScript(t, "quick.exe", reportRunning+"exit 3\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktIntegrity)
	defer done()
	scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
	for _, tc := range []struct {
		name, path string
		want       uint32
	}{
		{"LCMissing", `C:\Windows\Temp\missing.exe`, winemu.ErrorFileNotFound},
		{"LCOutside", `D:\apps\x.exe`, winemu.ErrorPathNotFound},
	} {
		svc, code := createService(ctx, t, cli, scm, tc.name, tc.path)
		if code != 0 {
			t.Fatal(code)
		}
		r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc})
		if r == nil || r.Return != tc.want {
			t.Fatalf("%s: StartService = %v / %d, want %d", tc.name, err, rc(r), tc.want)
		}
	}
	// A process that exits at once leaves the service STOPPED with its code.
	svc, _ := createService(ctx, t, cli, scm, "LCQuick", `%SystemRoot%\Temp\quick.exe`)
	if r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc}); err != nil || r.Return != 0 {
		t.Fatalf("StartService: %v / %d", err, rc(r))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := cli.QueryServiceStatus(ctx, &svcctl.QueryServiceStatusRequest{Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		st := resp.ServiceStatus
		if st.CurrentState == winemu.ServiceStopped {
			if st.Win32ExitCode != winemu.ErrorServiceSpecificError || st.ServiceSpecificExitCode != 3 {
				t.Fatalf("exit status = %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service still %d", st.CurrentState)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHangHitsClientDeadline(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	e.srv.Faults.SetHang(true)
	cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer ccancel()
	start := time.Now()
	_, err := cli.OpenSCMW(cctx, &svcctl.OpenSCMWRequest{DesiredAccess: scManagerConnect})
	if err == nil {
		t.Fatal("call succeeded against a hanging server")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("error %v is not the client deadline", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("call took %v", el)
	}
	// The client goes away; the hung server connection must end with it
	// (checkLeaks verifies no goroutine stays behind).
	done()
}

func TestRefuse(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e.srv.Faults.SetRefuse(true)
	if _, _, err := e.tryDialSCM(ctx, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy); err == nil {
		t.Fatal("dial succeeded while refusing")
	}
	e.srv.Faults.SetRefuse(false)
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	openSCM(ctx, t, cli, scManagerConnect)
}

func TestFragmentedRequestAndResponse(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	out := filepath.Join(e.root, "args.txt")
	e.installScript(t, "echoargs.exe", reportRunning+`printf '%s\n' "$@" > "`+out+`"`+"\nexec sleep 60\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
	var args []string
	for i := range 380 {
		args = append(args, fmt.Sprintf("arg-%04d", i))
	}
	path := `C:\Windows\Temp\echoargs.exe ` + strings.Join(args, " ")
	// UTF-16 on the wire: more than one 4096-byte fragment each way, while
	// the response still fits QueryServiceConfigW's 8 KiB buffer limit.
	if len(path)*2 < 5000 {
		t.Fatalf("path too short to fragment: %d", len(path))
	}
	svc, code := createService(ctx, t, cli, scm, "LCBig", path)
	if code != 0 {
		t.Fatal(code)
	}
	cfg, err := cli.QueryServiceConfigW(ctx, &svcctl.QueryServiceConfigWRequest{Service: svc, BufferLength: 8192})
	if err != nil || cfg.Return != 0 {
		t.Fatalf("QueryServiceConfigW: %v / %d", err, rc(cfg))
	}
	if cfg.ServiceConfig.BinaryPathName != path {
		t.Fatalf("binary path round trip: got %d chars, want %d", len(cfg.ServiceConfig.BinaryPathName), len(path))
	}
	logs := e.logs.String()
	if !regexp.MustCompile(`request fragment" .*opnum=12 first=false last=true`).MatchString(logs) {
		t.Errorf("CreateServiceW request was not fragmented:\n%s", logs)
	}
	if !regexp.MustCompile(`response sent" .*opnum=17 fragments=[2-9]`).MatchString(logs) {
		t.Errorf("QueryServiceConfigW response was not fragmented:\n%s", logs)
	}
	if r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc}); err != nil || r.Return != 0 {
		t.Fatalf("StartService: %v / %d", err, rc(r))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if got := strings.Fields(string(b)); len(got) == len(args) {
			if got[0] != args[0] || got[len(got)-1] != args[len(args)-1] {
				t.Fatalf("args = %v...%v", got[0], got[len(got)-1])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process did not get its %d arguments", len(args))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r, err := cli.ControlService(ctx, &svcctl.ControlServiceRequest{Service: svc, Control: controlStop}); err != nil || r.Return != 0 {
		t.Fatalf("stop: %v", err)
	}
}

func TestTamper(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	e.installSleeper(t, "t.exe")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Seal: go-msrpc's unchanged client does not check the signature of
	// sealed responses, so a flipped bit in the ciphertext flips the same
	// bit of the plaintext and is accepted silently.
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
	svc, code := createService(ctx, t, cli, scm, "LCTamper", `C:\Windows\Temp\t.exe 60`)
	if code != 0 {
		t.Fatal(code)
	}
	if r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc}); err != nil || r.Return != 0 {
		t.Fatalf("StartService: %v", err)
	}
	// SERVICE_STATUS is the first thing in the stub; dwCurrentState is its
	// second DWORD, so stub byte 4 is the low byte of the state.
	e.srv.Faults.SetTamper(winemu.TamperSpec{Count: 1, OpNum: 6, Interface: "svcctl", StubOffset: 4, Bit: 1})
	resp, err := cli.QueryServiceStatus(ctx, &svcctl.QueryServiceStatusRequest{Service: svc})
	if err != nil {
		t.Fatalf("sealed tampered response rejected by the client (it should be the unpatched go-msrpc): %v", err)
	}
	if got, want := resp.ServiceStatus.CurrentState, uint32(winemu.ServiceRunning^2); got != want {
		t.Fatalf("client saw state %d, want the flipped %d", got, want)
	}
	ev := e.srv.Faults.Tampered()
	if len(ev) != 1 {
		t.Fatalf("tamper events = %+v", ev)
	}
	if ev[0].StubOffset != 4 || ev[0].PDUOffset != 28 || ev[0].Before^ev[0].After != 2 || ev[0].AuthLevel != dcerpc.AuthLevelPktPrivacy {
		t.Fatalf("tamper event = %+v", ev[0])
	}
	t.Logf("sealed response: ciphertext byte %d (stub byte %d) changed %#02x -> %#02x; client accepted state %d",
		ev[0].PDUOffset, ev[0].StubOffset, ev[0].Before, ev[0].After, resp.ServiceStatus.CurrentState)
	// The count is used up: the next response is intact.
	if st := queryState(ctx, t, cli, svc); st != winemu.ServiceRunning {
		t.Fatalf("untampered state = %d", st)
	}

	// Sign: the client does verify signed responses, so the same flip is
	// detected; this proves the tampering hits protected bytes.
	cli2, done2 := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktIntegrity)
	defer done2()
	scm2 := openSCM(ctx, t, cli2, scManagerConnect)
	o, err := cli2.OpenServiceW(ctx, &svcctl.OpenServiceWRequest{ServiceManager: scm2, ServiceName: "LCTamper", DesiredAccess: serviceQueryStatus})
	if err != nil || o.Return != 0 {
		t.Fatal(err)
	}
	e.srv.Faults.SetTamper(winemu.TamperSpec{Count: 1, OpNum: 6, StubOffset: 4, Bit: 1})
	if _, err := cli2.QueryServiceStatus(ctx, &svcctl.QueryServiceStatusRequest{Service: o.Service}); err == nil {
		t.Fatal("signed tampered response accepted")
	}
	if ev := e.srv.Faults.Tampered(); len(ev) != 2 || ev[1].AuthLevel != dcerpc.AuthLevelPktIntegrity {
		t.Fatalf("tamper events = %+v", ev)
	}
}

func TestInProcessSCM(t *testing.T) {
	checkLeaks(t)
	srv := &winemu.Server{Root: t.TempDir()}
	defer srv.Close()
	scm := srv.SCM()
	ctx := winemu.WithCaller(context.Background(), "admin", true)
	o, err := scm.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: scManagerCreateService | scManagerConnect})
	if err != nil || o.Return != 0 {
		t.Fatalf("OpenSCM: %v %d", err, o.Return)
	}
	c, _ := scm.CreateServiceW(ctx, &svcctl.CreateServiceWRequest{ServiceManager: o.SCM, ServiceName: "x", BinaryPathName: `C:\Windows\x.exe`, DesiredAccess: serviceAllAccess})
	if c.Return != 0 {
		t.Fatal(c.Return)
	}
	if c2, _ := scm.CreateServiceW(ctx, &svcctl.CreateServiceWRequest{ServiceManager: o.SCM, ServiceName: "X", BinaryPathName: `C:\Windows\x.exe`}); c2.Return != winemu.ErrorServiceExists {
		t.Fatalf("duplicate = %d", c2.Return)
	}
	anon, _ := scm.OpenSCMW(context.Background(), &svcctl.OpenSCMWRequest{DesiredAccess: scManagerConnect})
	if anon.Return != winemu.ErrorAccessDenied {
		t.Fatalf("anonymous OpenSCM = %d", anon.Return)
	}
	user := winemu.WithCaller(context.Background(), "user", false)
	if u, _ := scm.OpenSCMW(user, &svcctl.OpenSCMWRequest{DesiredAccess: 0x10000000}); u.Return != winemu.ErrorAccessDenied {
		t.Fatalf("user GENERIC_ALL = %d", u.Return)
	}
}

func TestChangeServiceConfig(t *testing.T) {
	checkLeaks(t)
	e := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
	svc, code := createService(ctx, t, cli, scm, "LCChange", `C:\Windows\Temp\old.exe`)
	if code != 0 {
		t.Fatal(code)
	}
	const noChange = 0xffffffff
	r, err := cli.ChangeServiceConfigW(ctx, &svcctl.ChangeServiceConfigWRequest{
		Service: svc, ServiceType: noChange, StartType: 4 /* disabled */, ErrorControl: noChange,
		BinaryPathName: `C:\Windows\Temp\new.exe -x`, DisplayName: "Changed",
	})
	if err != nil || r.Return != 0 {
		t.Fatalf("ChangeServiceConfigW: %v / %v", err, rc(r))
	}
	cfg, err := cli.QueryServiceConfigW(ctx, &svcctl.QueryServiceConfigWRequest{Service: svc, BufferLength: 8192})
	if err != nil || cfg.Return != 0 {
		t.Fatalf("QueryServiceConfigW: %v", err)
	}
	c := cfg.ServiceConfig
	if c.StartType != 4 || c.ServiceType != serviceWin32OwnProcess || c.BinaryPathName != `C:\Windows\Temp\new.exe -x` || c.DisplayName != "Changed" {
		t.Fatalf("config after change = %+v", c)
	}
	// Too small a buffer reports the size needed.
	small, _ := cli.QueryServiceConfigW(ctx, &svcctl.QueryServiceConfigWRequest{Service: svc, BufferLength: 10})
	if small == nil || small.Return != winemu.ErrorInsufficientBuffer || small.BytesNeededLength <= 36 {
		t.Fatalf("small buffer: %+v", small)
	}
	// A handle without SERVICE_CHANGE_CONFIG is refused.
	o, err := cli.OpenServiceW(ctx, &svcctl.OpenServiceWRequest{ServiceManager: scm, ServiceName: "LCChange", DesiredAccess: serviceQueryStatus})
	if err != nil || o.Return != 0 {
		t.Fatal(err)
	}
	r, _ = cli.ChangeServiceConfigW(ctx, &svcctl.ChangeServiceConfigWRequest{Service: o.Service, ServiceType: noChange, StartType: 3, ErrorControl: noChange})
	if r == nil || r.Return != winemu.ErrorAccessDenied {
		t.Fatalf("change with a query handle = %v", rc(r))
	}
	if d, err := cli.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: svc}); err != nil || d.Return != 0 {
		t.Fatal(err)
	}
	r, _ = cli.ChangeServiceConfigW(ctx, &svcctl.ChangeServiceConfigWRequest{Service: svc, ServiceType: noChange, StartType: 3, ErrorControl: noChange})
	if r == nil || r.Return != winemu.ErrorServiceMarkedForDelete {
		t.Fatalf("change after delete = %v", rc(r))
	}
	if o2, _ := cli.OpenServiceW(ctx, &svcctl.OpenServiceWRequest{ServiceManager: scm, ServiceName: "LCChange", DesiredAccess: serviceQueryStatus}); o2 == nil || o2.Return != winemu.ErrorServiceMarkedForDelete {
		t.Fatalf("open after delete = %v", rc(o2))
	}
	closeHandle(ctx, t, cli, o.Service)
	closeHandle(ctx, t, cli, svc)
	if n := len(e.srv.SCM().Services()); n != 0 {
		t.Fatalf("%d services left", n)
	}
	if o3, _ := cli.OpenServiceW(ctx, &svcctl.OpenServiceWRequest{ServiceManager: scm, ServiceName: "LCChange", DesiredAccess: serviceQueryStatus}); o3 == nil || o3.Return != winemu.ErrorServiceDoesNotExist {
		t.Fatalf("open after removal = %v", rc(o3))
	}
}

// TestServiceStartTimeout: a program that never reports to the SCM (here
// /bin/sleep) fails StartService with 1053 once ServiceStartTimeout has
// passed, and its process is gone, as on Windows; one that exits before
// reporting fails the same way; a file that is no executable gives 193.
// With the wait turned off, the plain program counts as running.
func TestServiceStartTimeout(t *testing.T) {
	checkLeaks(t)
	const wait = 400 * time.Millisecond
	e := startServer(t, func(s *winemu.Server) { s.ServiceStartTimeout = wait })
	e.installPlainSleeper(t, "plain.exe")
	e.installScript(t, "exits.exe", "exit 0\n")
	if err := os.WriteFile(filepath.Join(e.root, "Temp", "arm64.exe"), []byte("MZ\x90\x00not an executable for this kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("%d", 86400+time.Now().UnixNano()%1000)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)

	svc, code := createService(ctx, t, cli, scm, "LCPlain", `C:\Windows\Temp\plain.exe `+marker)
	if code != 0 {
		t.Fatal(code)
	}
	start := time.Now()
	r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc})
	if r == nil || r.Return != winemu.ErrorServiceRequestTimeout {
		t.Fatalf("StartService of a program that never reports = %v / %d, want 1053", err, rc(r))
	}
	if d := time.Since(start); d < wait {
		t.Fatalf("StartService failed after %v, before the %v wait", d, wait)
	}
	if pids := findProcs(marker); len(pids) != 0 {
		t.Fatalf("process left running after 1053: %v", pids)
	}
	st, err := cli.QueryServiceStatus(ctx, &svcctl.QueryServiceStatusRequest{Service: svc})
	if err != nil || st.ServiceStatus.CurrentState != winemu.ServiceStopped || st.ServiceStatus.Win32ExitCode != winemu.ErrorServiceRequestTimeout {
		t.Fatalf("status after 1053: %v %+v", err, st)
	}

	svc, _ = createService(ctx, t, cli, scm, "LCExits", `C:\Windows\Temp\exits.exe`)
	if r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc}); r == nil || r.Return != winemu.ErrorServiceRequestTimeout {
		t.Fatalf("StartService of a program that exits without reporting = %v / %d, want 1053", err, rc(r))
	}

	svc, _ = createService(ctx, t, cli, scm, "LCArm64", `C:\Windows\Temp\arm64.exe`)
	if r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc}); r == nil || r.Return != winemu.ErrorBadExeFormat {
		t.Fatalf("StartService of a file that is no executable = %v / %d, want 193", err, rc(r))
	}
}

// TestServiceStartNoWait: with ServiceStartTimeout negative, a program
// that never reports counts as running once started.
func TestServiceStartNoWait(t *testing.T) {
	checkLeaks(t)
	e := startServer(t, func(s *winemu.Server) { s.ServiceStartTimeout = -1 })
	e.installPlainSleeper(t, "plain.exe")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, adminUser, adminPass, dcerpc.AuthLevelPktPrivacy)
	defer done()
	scm := openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
	svc, _ := createService(ctx, t, cli, scm, "LCPlain", `C:\Windows\Temp\plain.exe 60`)
	if r, err := cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: svc}); err != nil || r.Return != 0 {
		t.Fatalf("StartService: %v / %d", err, rc(r))
	}
	if st := queryState(ctx, t, cli, svc); st != winemu.ServiceRunning {
		t.Fatalf("state = %d, want RUNNING", st)
	}
	if r, err := cli.ControlService(ctx, &svcctl.ControlServiceRequest{Service: svc, Control: controlStop}); err != nil || r.Return != 0 {
		t.Fatalf("stop: %v", err)
	}
}
