package winemu

// wmi.go is the WMI provider of the emulator (MS-WMI): IWbemLevel1Login,
// IWbemServices (GetObject, ExecMethod, ExecQuery) and
// IEnumWbemClassObject over the DCOM object table of dcom.go, with
// Win32_Process.Create really starting a process under Server.Root.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/midl/uuid"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iactivation/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iobjectexporter/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremotescmactivator/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremunknown/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/iremunknown2/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/oaut"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/ienumwbemclassobject/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemlevel1login/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmi/iwbemservices/v0"
	"github.com/oiweiwei/go-msrpc/msrpc/dcom/wmio"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
)

// WBEM status codes (MS-WMI 2.2.11) the emulator returns.
const (
	wbemSFalse            = 0x00000001
	wbemENotFound         = 0x80041002
	wbemEAccessDenied     = 0x80041003
	wbemEInvalidParameter = 0x80041008
	wbemEInvalidNamespace = 0x8004100E
	wbemEInvalidClass     = 0x80041010
	wbemEInvalidQuery     = 0x80041017
	wbemEInvalidMethod    = 0x8004102E
	wbemEInvalidQueryType = 0x80041018
)

// Win32_Process.Create return values.
const (
	createSuccess          = 0
	createAccessDenied     = 2
	createUnknownFailure   = 8
	createPathNotFound     = 9
	createInvalidParameter = 21
)

// OSInfo is what the emulated Win32_OperatingSystem instance reports.
// Empty fields take the defaults of a Windows Server 2022 machine.
type OSInfo struct {
	Caption          string // "Microsoft Windows Server 2022 Standard"
	Version          string // "10.0.20348"
	BuildNumber      string // "20348"
	OSArchitecture   string // "64-bit"
	WindowsDirectory string // `C:\Windows`
}

func (o OSInfo) withDefaults() OSInfo {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Caption, "Microsoft Windows Server 2022 Standard")
	def(&o.Version, "10.0.20348")
	def(&o.BuildNumber, "20348")
	def(&o.OSArchitecture, "64-bit")
	def(&o.WindowsDirectory, `C:\Windows`)
	return o
}

// WMIFaults is the failure-injection control of the DCOM/WMI side. Its
// zero value injects nothing; all methods are safe for concurrent use and
// take effect for the next call. (Server.Faults applies too: Refuse
// resets connections on every port, Hang holds every request except the
// endpoint mapper's, and Tamper flips bits in responses of the interface
// it names, such as "IWbemServices".)
//
//   - Blackhole: the OXID bindings returned by activation name a port on
//     which connections are accepted and never answered, as when a
//     firewall lets the dynamic port's handshake through and nothing else
//     (or the service behind it is wedged).
//   - FilterDynamic: the OXID bindings name a port on which connection
//     attempts go unanswered (see FilteredPort), as when a firewall
//     drops the dynamic RPC range and lets 135 through.
//   - DenyActivation: RemoteActivation returns E_ACCESSDENIED, as DCOM
//     launch and activation permissions do.
//   - DenyLogin: IWbemLevel1Login.NTLMLogin returns WBEM_E_ACCESS_DENIED,
//     as the namespace security of root\cimv2 does for an account without
//     Remote Enable.
//   - CreateReturn: Win32_Process.Create starts nothing and returns this
//     ReturnValue (0 turns the mode off).
//   - ReusedPID: queries for one process ID answer with another process
//     (another ExecutablePath and CreationDate), as when Windows has
//     given the ID of an exited process to a new one. Terminate on that
//     ID kills nothing (the other process is not real) and is recorded
//     like any other (WMI.Terminated).
type WMIFaults struct {
	mu             sync.Mutex
	blackhole      bool
	filterDynamic  bool
	denyActivation bool
	denyLogin      bool
	createReturn   uint32
	reused         map[int]reusedPID
}

type reusedPID struct {
	exe     string
	created time.Time
}

// SetReusedPID makes pid look like a process running exe, created at
// created (the ReusedPID mode); an empty exe turns it off for pid.
func (f *WMIFaults) SetReusedPID(pid int, exe string, created time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if exe == "" {
		delete(f.reused, pid)
		return
	}
	if f.reused == nil {
		f.reused = make(map[int]reusedPID)
	}
	f.reused[pid] = reusedPID{exe: exe, created: created}
}

func (f *WMIFaults) reusedPID(pid int) (reusedPID, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.reused[pid]
	return r, ok
}

// SetBlackhole turns the Blackhole mode on or off.
func (f *WMIFaults) SetBlackhole(on bool) { f.mu.Lock(); f.blackhole = on; f.mu.Unlock() }

// SetFilterDynamic turns the FilterDynamic mode on or off.
func (f *WMIFaults) SetFilterDynamic(on bool) { f.mu.Lock(); f.filterDynamic = on; f.mu.Unlock() }

// FilterDynamic reports whether the FilterDynamic mode is on.
func (f *WMIFaults) FilterDynamic() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.filterDynamic }

// SetDenyActivation turns the DenyActivation mode on or off.
func (f *WMIFaults) SetDenyActivation(on bool) { f.mu.Lock(); f.denyActivation = on; f.mu.Unlock() }

// SetDenyLogin turns the DenyLogin mode on or off.
func (f *WMIFaults) SetDenyLogin(on bool) { f.mu.Lock(); f.denyLogin = on; f.mu.Unlock() }

// SetCreateReturn makes Win32_Process.Create return code without starting
// anything; 0 restores normal behaviour.
func (f *WMIFaults) SetCreateReturn(code uint32) { f.mu.Lock(); f.createReturn = code; f.mu.Unlock() }

// Blackhole reports whether the Blackhole mode is on.
func (f *WMIFaults) Blackhole() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.blackhole }

// DenyActivation reports whether the DenyActivation mode is on.
func (f *WMIFaults) DenyActivation() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.denyActivation
}

// DenyLogin reports whether the DenyLogin mode is on.
func (f *WMIFaults) DenyLogin() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.denyLogin }

// CreateReturn returns the injected Create return value (0: none).
func (f *WMIFaults) CreateReturn() uint32 { f.mu.Lock(); defer f.mu.Unlock(); return f.createReturn }

// WMI is the emulator's DCOM object exporter, activation service and WMI
// provider for root\cimv2. Create it with EnableWMI before the server
// starts serving; it serves IObjectExporter and IActivation on the
// endpoint mapper's port and IRemUnknown2, IWbemLevel1Login,
// IWbemServices and IEnumWbemClassObject on the server's dynamic port,
// which the OXID bindings name.
//
// It serves GetObject for Win32_Process and Win32_OperatingSystem,
// ExecMethod for Win32_Process.Create (which starts the process, with
// paths mapped under Server.Root as for the SCM, in its own process
// group) and Win32_Process.Terminate, and ExecQuery for
// "SELECT props FROM class [WHERE prop = value]" on those two classes
// (Win32_Process instances come from /proc). Only administrators
// calling at packet integrity or privacy may activate and log in. It
// does not garbage-collect objects by ping: objects live until released
// through IRemUnknown2 or until Close.
type WMI struct {
	// Faults injects DCOM and WMI failures.
	Faults WMIFaults

	srv        *Server
	os         OSInfo
	oxid       uint64
	remUnknown *dcom.IPID
	remHandle  dcerpc.ServerHandle

	mu         sync.Mutex
	objects    map[string]*comObject
	procs      map[int]*wmiProcess
	terminated []int
	hole       net.Listener
	holePort   uint16
	holeConns  map[net.Conn]struct{}
	filtered   *FilteredPort
	closed     bool
	wg         sync.WaitGroup
}

// WMIProcess is a snapshot of a process that Win32_Process.Create
// started.
type WMIProcess struct {
	PID         int
	CommandLine string
	// Path is the executable's path on this machine (under Server.Root).
	Path string
	// Running is false once the process has exited; ExitCode is then
	// its exit status (-1 if killed by a signal).
	Running  bool
	ExitCode int
}

type wmiProcess struct {
	WMIProcess
	done chan struct{}
}

// EnableWMI adds DCOM and WMI to srv and returns the provider. Call it
// before srv starts serving (Start, ListenAndServe or Serve), and call
// the provider's Close after srv.Close to stop the processes it started.
func EnableWMI(srv *Server, os OSInfo) (*WMI, error) {
	w := &WMI{
		srv:        srv,
		os:         os.withDefaults(),
		oxid:       random64(),
		remUnknown: (*dcom.IPID)(newGUID()),
		objects:    make(map[string]*comObject),
		procs:      make(map[int]*wmiProcess),
		holeConns:  make(map[net.Conn]struct{}),
	}
	w.remHandle = iremunknown2.NewRemoteUnknown2ServerHandle(&remUnknown{w: w})
	ifaces := []Interface{
		{
			Name:                 "IObjectExporter",
			Syntax:               *iobjectexporter.ObjectExporterSyntaxV0_0,
			Handle:               iobjectexporter.NewObjectExporterServerHandle(&objectExporter{w: w}),
			OnEndpointMapperPort: true,
		},
		{
			Name:                 "IActivation",
			Syntax:               *iactivation.ActivationSyntaxV0_0,
			Handle:               iactivation.NewActivationServerHandle(&activator{w: w}),
			OnEndpointMapperPort: true,
		},
		{
			Name:                 "IRemoteSCMActivator",
			Syntax:               *iremotescmactivator.RemoteSCMActivatorSyntaxV0_0,
			Handle:               iremotescmactivator.NewRemoteSCMActivatorServerHandle(&scmActivator{w: w}),
			OnEndpointMapperPort: true,
		},
		// The object exporter's IRemUnknown object answers binds for both
		// IRemUnknown2 (go-msrpc's client) and IRemUnknown (Windows
		// clients and impacket release through it): IRemUnknown2 keeps
		// IRemUnknown's opnums 3-5 and adds 6.
		{Name: "IRemUnknown2", Syntax: *iremunknown2.RemoteUnknown2SyntaxV0_0, Handle: noObject, Object: w.remUnknownObject},
		{Name: "IRemUnknown", Syntax: *iremunknown.RemoteUnknownSyntaxV0_0, Handle: noObject, Object: w.remUnknownObject},
		{Name: "IWbemLevel1Login", Syntax: *iwbemlevel1login.Level1LoginSyntaxV0_0, Handle: noObject, Object: w.dispatcher(iwbemlevel1login.Level1LoginIID)},
		{Name: "IWbemServices", Syntax: *iwbemservices.ServicesSyntaxV0_0, Handle: noObject, Object: w.dispatcher(iwbemservices.ServicesIID)},
		{Name: "IEnumWbemClassObject", Syntax: *ienumwbemclassobject.EnumClassObjectSyntaxV0_0, Handle: noObject, Object: w.dispatcher(ienumwbemclassobject.EnumClassObjectIID)},
	}
	for _, i := range ifaces {
		if err := srv.Register(i); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// remUnknownObject returns the IRemUnknown object's handle for its IPID.
func (w *WMI) remUnknownObject(ctx context.Context, ipid *uuid.UUID) (dcerpc.ServerHandle, bool) {
	if ipid == nil || !w.remUnknown.GUID().Equal(dtyp.GUIDFromUUID(ipid)) {
		return nil, false
	}
	return w.remHandle, true
}

func (w *WMI) loginSyntax() *dcerpc.SyntaxID { return iwbemlevel1login.Level1LoginSyntaxV0_0 }
func (w *WMI) loginIID() *dcom.IID           { return iwbemlevel1login.Level1LoginIID }

func (w *WMI) loginHandle() dcerpc.ServerHandle {
	return iwbemlevel1login.NewLevel1LoginServerHandle(&level1Login{w: w})
}

// Processes returns the processes Win32_Process.Create started, by PID.
func (w *WMI) Processes() []WMIProcess {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]WMIProcess, 0, len(w.procs))
	for _, p := range w.procs {
		out = append(out, p.WMIProcess)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// Terminated returns the process IDs that Win32_Process.Terminate was
// called on, in order, whatever the outcome.
func (w *WMI) Terminated() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.terminated...)
}

// Close drops every object, closes the blackhole listener and its
// connections, and stops the processes Create started (SIGTERM to their
// process group, SIGKILL after three seconds) unless Server.KeepProcesses
// is set. It is safe to call more than once.
func (w *WMI) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.wg.Wait()
		return nil
	}
	w.closed = true
	w.objects = make(map[string]*comObject)
	if w.hole != nil {
		w.hole.Close()
	}
	for c := range w.holeConns {
		c.Close()
	}
	if w.filtered != nil {
		w.filtered.Close()
	}
	var running []*wmiProcess
	for _, p := range w.procs {
		if p.Running {
			running = append(running, p)
		}
	}
	w.mu.Unlock()
	if !w.srv.KeepProcesses {
		var wg sync.WaitGroup
		for _, p := range running {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.terminate(p)
			}()
		}
		wg.Wait()
	}
	w.wg.Wait()
	return nil
}

// level1Login implements IWbemLevel1Login.
type level1Login struct {
	iwbemlevel1login.UnimplementedLevel1LoginServer
	w *WMI
}

// EstablishPosition is a no-op that reports no locale support.
func (l *level1Login) EstablishPosition(ctx context.Context, req *iwbemlevel1login.EstablishPositionRequest) (*iwbemlevel1login.EstablishPositionResponse, error) {
	return &iwbemlevel1login.EstablishPositionResponse{That: &dcom.ORPCThat{}}, nil
}

// normalizeNamespace turns "//./root/cimv2", `\\HOST\root\cimv2` and
// "root/cimv2" into "root\cimv2" (lower case).
func normalizeNamespace(ns string) string {
	ns = strings.ReplaceAll(ns, "/", `\`)
	if strings.HasPrefix(ns, `\\`) {
		rest := ns[2:]
		if i := strings.IndexByte(rest, '\\'); i >= 0 {
			ns = rest[i+1:]
		} else {
			ns = ""
		}
	}
	return strings.ToLower(strings.Trim(ns, `\`))
}

// NTLMLogin returns an IWbemServices for root\cimv2 to an administrator.
func (l *level1Login) NTLMLogin(ctx context.Context, req *iwbemlevel1login.NTLMLoginRequest) (*iwbemlevel1login.NTLMLoginResponse, error) {
	w := l.w
	fail := func(hr uint32) (*iwbemlevel1login.NTLMLoginResponse, error) {
		return &iwbemlevel1login.NTLMLoginResponse{That: &dcom.ORPCThat{}, Return: hr32(hr)}, nil
	}
	call, _ := CallFromContext(ctx)
	if call == nil || !call.Admin || w.Faults.DenyLogin() {
		return fail(wbemEAccessDenied)
	}
	if normalizeNamespace(req.NetworkResource) != `root\cimv2` {
		return fail(wbemEInvalidNamespace)
	}
	_, ip, err := w.export(ctx, "IWbemServices", iwbemservices.ServicesIID,
		iwbemservices.NewServicesServerHandle(&services{w: w}))
	if err != nil {
		return nil, err
	}
	return &iwbemlevel1login.NTLMLoginResponse{That: &dcom.ORPCThat{}, Namespace: (*wmi.Services)(ip)}, nil
}

// services implements IWbemServices for root\cimv2.
type services struct {
	iwbemservices.UnimplementedServicesServer
	w *WMI
}

func bstr(s *oaut.String) string {
	if s == nil {
		return ""
	}
	return s.Data
}

// GetObject returns a class definition.
func (s *services) GetObject(ctx context.Context, req *iwbemservices.GetObjectRequest) (*iwbemservices.GetObjectResponse, error) {
	obj, ok := s.w.classObject(bstr(req.ObjectPath))
	if !ok {
		return &iwbemservices.GetObjectResponse{That: &dcom.ORPCThat{}, Return: hr32(wbemENotFound)}, nil
	}
	co, err := marshalObject(obj)
	if err != nil {
		return nil, err
	}
	return &iwbemservices.GetObjectResponse{That: &dcom.ORPCThat{}, Object: co}, nil
}

// instancePath matches Win32_Process.Handle="1234" (or Handle=1234).
var instancePath = regexp.MustCompile(`(?i)^\s*win32_process\.handle\s*=\s*"?(\d+)"?\s*$`)

// ExecMethod runs Win32_Process.Create (static) and
// Win32_Process.Terminate (on an instance path).
func (s *services) ExecMethod(ctx context.Context, req *iwbemservices.ExecMethodRequest) (*iwbemservices.ExecMethodResponse, error) {
	w := s.w
	fail := func(hr uint32) (*iwbemservices.ExecMethodResponse, error) {
		return &iwbemservices.ExecMethodResponse{That: &dcom.ORPCThat{}, Return: hr32(hr)}, nil
	}
	path, name := bstr(req.ObjectPath), bstr(req.MethodName)
	var in wmio.Values
	if req.InParams != nil && len(req.InParams.Data) > 0 {
		obj, err := unmarshalObject(req.InParams)
		if err != nil || obj.Instance == nil {
			return fail(wbemEInvalidParameter)
		}
		in = obj.Values()
	}
	var out *wmio.Object
	var err error
	switch {
	case strings.EqualFold(strings.TrimSpace(path), "Win32_Process") && strings.EqualFold(name, "Create"):
		pid, ret := w.create(ctx, in)
		out, err = w.instance(processCreateOut(), wmio.Values{"ProcessId": pid, "ReturnValue": ret})
	case instancePath.MatchString(path) && strings.EqualFold(name, "Terminate"):
		pid, _ := strconv.Atoi(instancePath.FindStringSubmatch(path)[1])
		out, err = w.instance(processTerminateOut(), wmio.Values{"ReturnValue": w.terminatePID(pid)})
	case strings.EqualFold(strings.TrimSpace(path), "Win32_Process") || instancePath.MatchString(path):
		return fail(wbemEInvalidMethod)
	default:
		return fail(wbemENotFound)
	}
	if err != nil {
		return nil, err
	}
	out.Decoration = nil
	co, err := marshalObject(out)
	if err != nil {
		return nil, err
	}
	return &iwbemservices.ExecMethodResponse{That: &dcom.ORPCThat{}, OutParams: co}, nil
}

// create starts a process for Win32_Process.Create and returns its PID
// and the method's ReturnValue.
func (w *WMI) create(ctx context.Context, in wmio.Values) (uint32, uint32) {
	if code := w.Faults.CreateReturn(); code != 0 {
		w.srv.Logger.Info("Win32_Process.Create failed by fault mode", "return", code)
		return 0, code
	}
	cmdline, _ := in["CommandLine"].(string)
	if strings.TrimSpace(cmdline) == "" {
		return 0, createInvalidParameter
	}
	exe, args, err := ParseCommandLine(cmdline)
	if err != nil {
		return 0, createInvalidParameter
	}
	if hook := w.srv.BeforeStart; hook != nil {
		hook("wmi", cmdline)
	}
	// The system drive's root (wmiexec.py passes C:\) lies outside the
	// emulated Windows directory; it exists on every Windows computer, so
	// the process runs in Root instead of failing.
	cwd, _ := in["CurrentDirectory"].(string)
	if isDriveRoot(cwd) {
		cwd = ""
	}
	path, err := MapPath(w.srv.Root, searchPath(w.srv.Root, exe, cwd))
	if err != nil || w.srv.Root == "" {
		return 0, createPathNotFound
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		return 0, createPathNotFound
	}
	dir := w.srv.Root
	if cwd != "" {
		d, err := MapPath(w.srv.Root, cwd)
		if err != nil {
			return 0, createPathNotFound
		}
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return 0, createPathNotFound
		}
		dir = d
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WINEMU_WMI=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out := w.srv.ProcessOutput; out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, createUnknownFailure
	}
	if err := cmd.Start(); err != nil {
		switch {
		case errors.Is(err, fs.ErrPermission):
			return 0, createAccessDenied
		case errors.Is(err, fs.ErrNotExist):
			return 0, createPathNotFound
		default:
			return 0, createUnknownFailure
		}
	}
	p := &wmiProcess{WMIProcess: WMIProcess{PID: cmd.Process.Pid, CommandLine: cmdline, Path: path, Running: true}, done: make(chan struct{})}
	w.procs[p.PID] = p
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		_ = cmd.Wait()
		w.mu.Lock()
		p.Running, p.ExitCode = false, cmd.ProcessState.ExitCode()
		w.mu.Unlock()
		close(p.done)
		w.srv.Logger.Info("wmi process exited", "pid", p.PID, "exit", p.ExitCode)
	}()
	user := ""
	if call, ok := CallFromContext(ctx); ok {
		user = call.User
	}
	w.srv.Logger.Info("Win32_Process.Create started a process", "pid", p.PID, "path", path, "user", user)
	return uint32(p.PID), createSuccess
}

// searchPath resolves a program named without a directory ("cmd.exe",
// "notepad") as CreateProcess does for Win32_Process.Create: the
// current directory, then System32, then the Windows directory, with
// ".exe" added when the name has no extension. A name with a directory,
// or one found nowhere, is returned as it is (and MapPath then refuses
// it or Create reports it missing). It does not search PATH.
func searchPath(root, exe, cwd string) string {
	if strings.ContainsAny(exe, `\/:`) {
		return exe
	}
	name := exe
	if !strings.Contains(name, ".") {
		name += ".exe"
	}
	dirs := []string{`C:\Windows\System32`, `C:\Windows`}
	if cwd != "" {
		dirs = append([]string{cwd}, dirs...)
	}
	for _, d := range dirs {
		cand := strings.TrimRight(d, `\`) + `\` + name
		if p, err := MapPath(root, cand); err == nil {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return cand
			}
		}
	}
	return exe
}

// isDriveRoot reports whether p is the system drive's root (C:\ or C:).
func isDriveRoot(p string) bool {
	p = strings.TrimRight(strings.ReplaceAll(strings.TrimSpace(p), "/", `\`), `\`)
	return strings.EqualFold(p, "C:")
}

// terminatePID stops a process Create started (Terminate on others is
// refused with ReturnValue 2, access denied).
func (w *WMI) terminatePID(pid int) uint32 {
	w.mu.Lock()
	w.terminated = append(w.terminated, pid)
	p, ok := w.procs[pid]
	w.mu.Unlock()
	if _, reused := w.Faults.reusedPID(pid); reused {
		w.srv.Logger.Info("Win32_Process.Terminate of a reused process ID", "pid", pid)
		return createSuccess
	}
	if !ok {
		if processExists(pid) {
			return createAccessDenied
		}
		return createPathNotFound
	}
	w.terminate(p)
	return createSuccess
}

// terminate sends SIGTERM to the process group, then SIGKILL after three
// seconds, and waits for the process to be reaped.
func (w *WMI) terminate(p *wmiProcess) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	<-p.done
}

// wqlSelect matches the WQL the emulator answers.
var wqlSelect = regexp.MustCompile(`(?is)^\s*select\s+(.+?)\s+from\s+(\w+)\s*(?:where\s+(\w+)\s*=\s*(?:'([^']*)'|"([^"]*)"|(\d+)))?\s*$`)

// ExecQuery answers a WQL SELECT on Win32_OperatingSystem or
// Win32_Process with an enumerator object.
func (s *services) ExecQuery(ctx context.Context, req *iwbemservices.ExecQueryRequest) (*iwbemservices.ExecQueryResponse, error) {
	w := s.w
	fail := func(hr uint32) (*iwbemservices.ExecQueryResponse, error) {
		return &iwbemservices.ExecQueryResponse{That: &dcom.ORPCThat{}, Return: hr32(hr)}, nil
	}
	if !strings.EqualFold(bstr(req.QueryLanguage), "WQL") {
		return fail(wbemEInvalidQueryType)
	}
	m := wqlSelect.FindStringSubmatch(bstr(req.Query))
	if m == nil {
		return fail(wbemEInvalidQuery)
	}
	class, prop := m[2], m[3]
	val := m[4] + m[5] + m[6]
	var objs []*wmio.Object
	var err error
	switch strings.ToLower(class) {
	case "win32_operatingsystem":
		objs, err = w.osInstances()
	case "win32_process":
		objs, err = w.processInstances(prop, val)
	default:
		return fail(wbemEInvalidClass)
	}
	if err != nil {
		return nil, err
	}
	if prop != "" {
		objs = filterInstances(objs, prop, val)
	}
	e := &enumerator{objs: objs}
	_, ip, err := w.export(ctx, "IEnumWbemClassObject", ienumwbemclassobject.EnumClassObjectIID,
		ienumwbemclassobject.NewEnumClassObjectServerHandle(e))
	if err != nil {
		return nil, err
	}
	return &iwbemservices.ExecQueryResponse{That: &dcom.ORPCThat{}, Enum: (*wmi.EnumClassObject)(ip)}, nil
}

// filterInstances keeps the instances whose property prop equals val
// (strings case-insensitively, numbers by value).
func filterInstances(objs []*wmio.Object, prop, val string) []*wmio.Object {
	var out []*wmio.Object
	for _, o := range objs {
		for _, p := range o.Instance.CurrentClass.Properties {
			if !strings.EqualFold(p.Name, prop) {
				continue
			}
			v := o.Instance.Properties[p.Order].Value.Value
			if v != nil && strings.EqualFold(fmt.Sprint(v), val) {
				out = append(out, o)
			}
		}
	}
	return out
}

func (w *WMI) osInstances() ([]*wmio.Object, error) {
	o := w.os
	sysdir := strings.TrimRight(o.WindowsDirectory, `\`) + `\system32`
	inst, err := w.instance(osClass(), wmio.Values{
		"BuildNumber":         o.BuildNumber,
		"Caption":             o.Caption,
		"CreationClassName":   "Win32_OperatingSystem",
		"CSCreationClassName": "Win32_ComputerSystem",
		"CSName":              w.srv.netbiosName(),
		"Manufacturer":        "Microsoft Corporation",
		"Name":                o.Caption + "|" + o.WindowsDirectory + `|\Device\Harddisk0\Partition2`,
		"OSArchitecture":      o.OSArchitecture,
		"OSType":              uint16(18),
		"SystemDirectory":     sysdir,
		"Version":             o.Version,
		"WindowsDirectory":    o.WindowsDirectory,
	})
	if err != nil {
		return nil, err
	}
	return []*wmio.Object{inst}, nil
}

// processExists reports whether pid is a live (not zombie) process.
func processExists(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// processInstances lists processes from /proc (just one when the query
// selects a ProcessId or Handle).
func (w *WMI) processInstances(prop, val string) ([]*wmio.Object, error) {
	var pids []int
	if (strings.EqualFold(prop, "ProcessId") || strings.EqualFold(prop, "Handle")) && val != "" {
		if pid, err := strconv.Atoi(val); err == nil {
			pids = []int{pid}
		}
	} else {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	var out []*wmio.Object
	for _, pid := range pids {
		if r, ok := w.Faults.reusedPID(pid); ok {
			inst, err := w.reusedInstance(pid, r)
			if err != nil {
				return nil, err
			}
			out = append(out, inst)
			continue
		}
		if !processExists(pid) {
			continue
		}
		inst, err := w.processInstance(pid)
		if err != nil {
			return nil, err
		}
		out = append(out, inst)
	}
	return out, nil
}

func (w *WMI) processInstance(pid int) (*wmio.Object, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	name, cmdline, exe := "", "", ""
	w.mu.Lock()
	if p, ok := w.procs[pid]; ok {
		cmdline = p.CommandLine
		if e, _, err := ParseCommandLine(p.CommandLine); err == nil {
			exe = e
			name = e[strings.LastIndexAny(e, `\/`)+1:]
		}
	}
	w.mu.Unlock()
	if name == "" {
		if b, err := os.ReadFile(dir + "/comm"); err == nil {
			name = strings.TrimSpace(string(b))
		}
		if b, err := os.ReadFile(dir + "/cmdline"); err == nil {
			cmdline = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		}
		if l, err := os.Readlink(dir + "/exe"); err == nil {
			exe = filepath.Clean(l)
		}
	}
	ppid := uint32(0)
	threads := uint32(0)
	if b, err := os.ReadFile(dir + "/stat"); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 17 {
				v, _ := strconv.ParseUint(f[1], 10, 32)
				ppid = uint32(v)
				t, _ := strconv.ParseUint(f[17], 10, 32)
				threads = uint32(t)
			}
		}
	}
	return w.instance(processClass(), wmio.Values{
		"Caption":             name,
		"CommandLine":         cmdline,
		"CreationClassName":   "Win32_Process",
		"CreationDate":        CIMDateTime(processStart(pid)),
		"CSCreationClassName": "Win32_ComputerSystem",
		"CSName":              w.srv.netbiosName(),
		"Description":         name,
		"ExecutablePath":      exe,
		"Handle":              strconv.Itoa(pid),
		"Name":                name,
		"OSCreationClassName": "Win32_OperatingSystem",
		"OSName":              w.os.Caption,
		"ParentProcessId":     ppid,
		"ProcessId":           uint32(pid),
		"SessionId":           uint32(0),
		"ThreadCount":         threads,
		"WindowsVersion":      w.os.Version,
	})
}

// reusedInstance is the Win32_Process of another process that holds pid
// (the ReusedPID fault).
func (w *WMI) reusedInstance(pid int, r reusedPID) (*wmio.Object, error) {
	name := r.exe[strings.LastIndexAny(r.exe, `\/`)+1:]
	return w.instance(processClass(), wmio.Values{
		"Caption":             name,
		"CommandLine":         `"` + r.exe + `"`,
		"CreationClassName":   "Win32_Process",
		"CreationDate":        CIMDateTime(r.created),
		"CSCreationClassName": "Win32_ComputerSystem",
		"CSName":              w.srv.netbiosName(),
		"Description":         name,
		"ExecutablePath":      r.exe,
		"Handle":              strconv.Itoa(pid),
		"Name":                name,
		"OSCreationClassName": "Win32_OperatingSystem",
		"OSName":              w.os.Caption,
		"ProcessId":           uint32(pid),
		"SessionId":           uint32(0),
		"WindowsVersion":      w.os.Version,
	})
}

// CIMDateTime formats t as a CIM DATETIME, the form of WMI's date
// properties (Win32_Process.CreationDate): yyyymmddHHMMSS.mmmmmm, then the
// offset from UTC in minutes with its sign ("20261206083012.123456+060").
// The zero time gives "".
func CIMDateTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	_, off := t.Zone()
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	return fmt.Sprintf("%s.%06d%c%03d", t.Format("20060102150405"), t.Nanosecond()/1000, sign, off/60)
}

// clockTicks is the kernel's USER_HZ, the unit of a process's start time
// in /proc/PID/stat; it is 100 on every Linux architecture Go supports.
const clockTicks = 100

// processStart returns when pid started (from /proc: boot time plus the
// process's start time in clock ticks), or the zero time.
func processStart(pid int) time.Time {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return time.Time{}
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 { // starttime is field 22; f starts at field 3
		return time.Time{}
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return time.Time{}
	}
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}
			}
			return time.Unix(boot, 0).Add(time.Duration(ticks) * time.Second / clockTicks)
		}
	}
	return time.Time{}
}

// enumerator implements IEnumWbemClassObject over a fixed result set.
type enumerator struct {
	ienumwbemclassobject.UnimplementedEnumClassObjectServer
	mu   sync.Mutex
	objs []*wmio.Object
	pos  int
}

// Reset rewinds the enumeration.
func (e *enumerator) Reset(ctx context.Context, req *ienumwbemclassobject.ResetRequest) (*ienumwbemclassobject.ResetResponse, error) {
	e.mu.Lock()
	e.pos = 0
	e.mu.Unlock()
	return &ienumwbemclassobject.ResetResponse{That: &dcom.ORPCThat{}}, nil
}

// Next returns up to Count objects; WBEM_S_FALSE when fewer remain.
func (e *enumerator) Next(ctx context.Context, req *ienumwbemclassobject.NextRequest) (*ienumwbemclassobject.NextResponse, error) {
	e.mu.Lock()
	n := min(int(req.Count), len(e.objs)-e.pos)
	batch := e.objs[e.pos : e.pos+n]
	e.pos += n
	e.mu.Unlock()
	resp := &ienumwbemclassobject.NextResponse{Count: req.Count, That: &dcom.ORPCThat{}, Returned: uint32(n)}
	for _, o := range batch {
		co, err := marshalObject(o)
		if err != nil {
			return nil, err
		}
		resp.Objects = append(resp.Objects, co)
	}
	if uint32(n) < req.Count {
		resp.Return = wbemSFalse
	}
	return resp, nil
}
