package winemu_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

const (
	python3          = "/usr/bin/python3"
	impacketExamples = "/usr/share/doc/python3-impacket/examples"
)

// needImpacket skips the test when Debian's python3-impacket (installed
// by scripts/setup.sh) is missing, or fails it under CI=true or
// LANCONNECT_LAB=require, as the lab tests do.
func needImpacket(t *testing.T, script string) {
	t.Helper()
	err := exec.Command(python3, "-c", "import impacket.dcerpc.v5.scmr, impacket.dcerpc.v5.epm").Run()
	if err == nil && script != "" {
		_, err = os.Stat(script)
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" || os.Getenv("LANCONNECT_LAB") == "require" {
		t.Fatalf("impacket required but unavailable (run scripts/setup.sh as root): %v", err)
	}
	t.Skipf("impacket unavailable (%s with python3-impacket; run scripts/setup.sh as root): %v", python3, err)
}

// TestImpacketInterop drives the server with impacket, an independent
// DCE/RPC implementation: ept_map (opnum 3) on 135 must hand out the
// dynamic svcctl port, and an unauthenticated OpenSCManagerW on it must
// come back as ERROR_ACCESS_DENIED in a well-formed response.
func TestImpacketInterop(t *testing.T) {
	needImpacket(t, "")
	checkLeaks(t)
	e := startServer(t)
	ep, _ := e.srv.EndpointFor(svcctl.SvcctlSyntaxV2_0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python3, "testdata/impacket_scm.py", e.ip).CombinedOutput()
	if err != nil {
		t.Fatalf("impacket: %v\n%s", err, out)
	}
	s := string(out)
	want := "BINDING ncacn_ip_tcp:" + e.ip + "[" + strconv.Itoa(int(ep.Addr.Port())) + "]"
	if !strings.Contains(s, want) || !strings.Contains(s, "DENIED 5") {
		t.Fatalf("impacket output:\n%s\nwant %q and DENIED 5", s, want)
	}
	if !strings.Contains(e.logs.String(), "op=ept_map") {
		t.Errorf("impacket did not use ept_map:\n%s", e.logs.String())
	}
}

// TestImpacketWrongPassword: impacket with a wrong password gets the
// bind, sends auth3 (which gets no reply), and its first request is
// faulted with status 5 (rpc_s_access_denied), as on Windows; nothing is
// served.
func TestImpacketWrongPassword(t *testing.T) {
	needImpacket(t, "")
	checkLeaks(t)
	e := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python3, "testdata/impacket_scm.py", e.ip, adminUser, "not-"+adminPass).CombinedOutput()
	if err != nil {
		t.Fatalf("impacket: %v\n%s", err, out)
	}
	if s := string(out); !strings.Contains(s, "DENIED rpc_s_access_denied") || strings.Contains(s, "OPENED") {
		t.Fatalf("impacket output:\n%s\nwant DENIED rpc_s_access_denied", s)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "NTProofStr mismatch") || strings.Contains(logs, "op=ROpenSCManagerW") {
		t.Errorf("server log: want a refused logon and no SCM call:\n%s", logs)
	}
}

// TestImpacketRPCDump runs impacket's rpcdump.py, as a technician would
// against Windows: it must list svcctl through the endpoint mapper
// (ept_lookup) at the dynamic port the server serves it on.
func TestImpacketRPCDump(t *testing.T) {
	script := filepath.Join(impacketExamples, "rpcdump.py")
	needImpacket(t, script)
	checkLeaks(t)
	e := startServer(t)
	ep, _ := e.srv.EndpointFor(svcctl.SvcctlSyntaxV2_0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python3, script, "-port", "135", e.ip).CombinedOutput()
	if err != nil {
		t.Fatalf("rpcdump.py: %v\n%s", err, out)
	}
	s := string(out)
	want := "ncacn_ip_tcp:" + e.ip + "[" + strconv.Itoa(int(ep.Addr.Port())) + "]"
	if !strings.Contains(s, "367ABB81-9844-35F1-AD32-98F038001003") || !strings.Contains(s, want) {
		t.Fatalf("rpcdump.py output lacks svcctl at %s:\n%s", want, s)
	}
	if !strings.Contains(e.logs.String(), "op=ept_lookup") {
		t.Errorf("rpcdump.py did not use ept_lookup:\n%s", e.logs.String())
	}
}

// TestImpacketSvcctlPrivacy is the administrator's script run against
// winemu as against Windows: impacket authenticates with NTLM (no MIC,
// no Version: what Windows accepts and go-msrpc's acceptor refused) at
// packet privacy over ncacn_ip_tcp found through the endpoint mapper,
// then creates, starts, stops and deletes a service. winemu must have
// started the binary, logged the calls as the administrator at level 6,
// and end with an empty service table. Packet integrity is run too.
func TestImpacketSvcctlPrivacy(t *testing.T) {
	needImpacket(t, "")
	for _, level := range []int{6, 5} {
		t.Run("level"+strconv.Itoa(level), func(t *testing.T) { testImpacketSvcctl(t, level) })
	}
}

func testImpacketSvcctl(t *testing.T, level int) {
	checkLeaks(t)
	startedCh := make(chan string, 4)
	e := startServer(t, func(s *winemu.Server) {
		s.BeforeStart = func(kind, cmd string) { startedCh <- kind + " " + cmd }
	})
	exe := e.installSleeper(t, "ImpApplet.exe")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python3, "testdata/impacket_svc.py",
		e.ip, adminUser, adminPass, "LCImpacket1", `C:\Windows\Temp\ImpApplet.exe 60`, strconv.Itoa(level))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		if !strings.HasPrefix(line, "STARTED") {
			continue
		}
		// The service runs now: winemu's view, and the real process.
		if line != "STARTED "+strconv.Itoa(winemu.ServiceRunning) {
			t.Errorf("impacket saw %q, want RUNNING (%d)", line, winemu.ServiceRunning)
		}
		svcs := e.srv.SCM().Services()
		if len(svcs) != 1 || svcs[0].Name != "LCImpacket1" || svcs[0].PID == 0 {
			t.Errorf("service table while running = %+v", svcs)
		} else if args, ok := waitExec(svcs[0].PID, exe); !ok || args[0] != exe || len(args) != 2 || args[1] != "60" {
			t.Errorf("process %d runs %q (alive %v), want [%s 60]", svcs[0].PID, args, ok, exe)
		}
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			t.Errorf("release impacket: %v", err)
		}
	}
	werr := cmd.Wait()
	s := strings.Join(seen, "\n")
	if werr != nil {
		t.Fatalf("impacket svcctl: %v\nstdout:\n%s\nstderr:\n%s", werr, s, stderr.String())
	}
	for _, want := range []string{"CREATED", "STARTED", "STOPPED " + strconv.Itoa(winemu.ServiceStopped), "DELETED"} {
		if !strings.Contains(s, want) {
			t.Fatalf("impacket output lacks %q:\n%s", want, s)
		}
	}
	close(startedCh)
	var started []string
	for c := range startedCh {
		started = append(started, c)
	}
	if len(started) != 1 || !strings.Contains(started[0], `ImpApplet.exe`) {
		t.Fatalf("BeforeStart saw %q, want one start of ImpApplet.exe", started)
	}
	inst := e.srv.SCM().Installed()
	if len(inst) != 1 || inst[0].Name != "LCImpacket1" || inst[0].StartType != 3 {
		t.Fatalf("installed services = %+v", inst)
	}
	if svcs := e.srv.SCM().Services(); len(svcs) != 0 {
		t.Fatalf("service table after delete: %+v", svcs)
	}
	logs := e.logs.String()
	for _, want := range []string{"op=ept_map", "op=RCreateServiceW", "op=RStartServiceW", "op=RDeleteService",
		"user=" + adminUser + " auth=10 level=" + strconv.Itoa(level),
		// What Windows accepts and go-msrpc's acceptor refused.
		"user=" + adminUser + " level=" + strconv.Itoa(level) + " ntlm_mic=false ntlm_version=false"} {
		if !strings.Contains(logs, want) {
			t.Errorf("server log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, adminPass) {
		t.Fatal("password in server log")
	}
}

// TestImpacketWMIExec runs impacket's wmiexec.py -nooutput against
// winemu, as an administrator would against Windows: activation through
// IRemoteSCMActivator::RemoteCreateInstance, NTLMLogin, RemRelease through
// IRemUnknown (not IRemUnknown2), then Win32_Process.Create of
// "cmd.exe /Q /c COMMAND", where the bare cmd.exe is found in System32 as
// CreateProcess finds it. The test's cmd.exe records its arguments.
func TestImpacketWMIExec(t *testing.T) {
	script := filepath.Join(impacketExamples, "wmiexec.py")
	needImpacket(t, script)
	checkLeaks(t)
	e := startWMIServer(t)
	root := e.srv.Root
	if err := os.MkdirAll(filepath.Join(root, "System32"), 0o755); err != nil {
		t.Fatal(err)
	}
	argsFile := filepath.Join(root, "Temp", "cmd-args.txt")
	cmdExe := "#!/bin/sh\nprintf '%s|' \"$@\" > " + argsFile + ".tmp && mv " + argsFile + ".tmp " + argsFile + "\n"
	if err := os.WriteFile(filepath.Join(root, "System32", "cmd.exe"), []byte(cmdExe), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python3, script, "-nooutput",
		adminUser+":"+adminPass+"@"+e.ip, `C:\Windows\Temp\applet.exe -ticket-file s1.ticket`).CombinedOutput()
	if err != nil {
		t.Fatalf("wmiexec.py: %v\n%s", err, out)
	}
	// wmiexec does not read Create's ReturnValue: the process's own record
	// of its arguments is the proof, within a deadline.
	var got []byte
	for deadline := time.Now().Add(15 * time.Second); ; {
		if got, err = os.ReadFile(argsFile); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if want := `/Q|/c|C:\Windows\Temp\applet.exe|-ticket-file|s1.ticket|`; string(got) != want {
		t.Fatalf("cmd.exe ran with %q (%v), want %q\nwmiexec.py:\n%s\nwinemu:\n%s", got, err, want, out, e.logs.String())
	}
	for _, op := range []string{"op=RemoteCreateInstance", "op=NTLMLogin", "iface=IRemUnknown op=RemRelease", "op=ExecMethod"} {
		if !strings.Contains(e.logs.String(), op) {
			t.Errorf("winemu log lacks %q:\n%s", op, e.logs.String())
		}
	}
}
