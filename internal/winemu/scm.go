package winemu

// scm.go is the Service Control Manager (MS-SCMR) behind go-msrpc's
// generated svcctl server stubs: an in-memory service table whose
// services start real processes from the directory C:\Windows maps to.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
)

// Win32 error codes returned by the SCM.
const (
	ErrorSuccess                = 0
	ErrorFileNotFound           = 2
	ErrorPathNotFound           = 3
	ErrorAccessDenied           = 5
	ErrorInvalidHandle          = 6
	ErrorInvalidParameter       = 87
	ErrorInsufficientBuffer     = 122
	ErrorInvalidName            = 123
	ErrorInvalidLevel           = 124
	ErrorBadExeFormat           = 193
	ErrorInvalidServiceControl  = 1052
	ErrorServiceRequestTimeout  = 1053
	ErrorServiceAlreadyRunning  = 1056
	ErrorServiceDoesNotExist    = 1060
	ErrorServiceNotActive       = 1062
	ErrorDatabaseDoesNotExist   = 1065
	ErrorServiceSpecificError   = 1066
	ErrorProcessAborted         = 1067
	ErrorServiceMarkedForDelete = 1072
	ErrorServiceExists          = 1073
)

// Service states (SERVICE_STATUS.dwCurrentState).
const (
	ServiceStopped      = 1
	ServiceStartPending = 2
	ServiceStopPending  = 3
	ServiceRunning      = 4
)

// Access rights (MS-SCMR 3.1.4).
const (
	scManagerConnect       = 0x0001
	scManagerCreateService = 0x0002
	scManagerEnumerate     = 0x0004
	scManagerLock          = 0x0008
	scManagerQueryLock     = 0x0010
	scManagerModifyBoot    = 0x0020
	scManagerAll           = 0xf003f

	serviceQueryConfig  = 0x0001
	serviceChangeConfig = 0x0002
	serviceQueryStatus  = 0x0004
	serviceEnumDeps     = 0x0008
	serviceStart        = 0x0010
	serviceStop         = 0x0020
	servicePause        = 0x0040
	serviceInterrogate  = 0x0080
	serviceUserControl  = 0x0100
	serviceAll          = 0xf01ff

	accessDelete       = 0x00010000
	readControl        = 0x00020000
	maximumAllowed     = 0x02000000
	genericAll         = 0x10000000
	genericExecute     = 0x20000000
	genericWrite       = 0x40000000
	genericRead        = 0x80000000
	serviceNoChange    = 0xffffffff
	controlStop        = 1
	controlInterrogate = 4

	// What an ordinary authenticated user is granted (the default DACLs of
	// the SCM database and of services).
	userSCMRights     = scManagerConnect | scManagerEnumerate | scManagerQueryLock | readControl
	userServiceRights = serviceQueryConfig | serviceQueryStatus | serviceEnumDeps | serviceInterrogate | serviceUserControl | readControl
)

type genericMapping struct{ read, write, execute, all uint32 }

var (
	scmMapping = genericMapping{
		read:    readControl | scManagerEnumerate | scManagerQueryLock,
		write:   readControl | scManagerCreateService | scManagerModifyBoot,
		execute: readControl | scManagerConnect | scManagerLock,
		all:     scManagerAll,
	}
	serviceMapping = genericMapping{
		read:    readControl | serviceQueryConfig | serviceQueryStatus | serviceInterrogate | serviceEnumDeps,
		write:   readControl | serviceChangeConfig,
		execute: readControl | serviceStart | serviceStop | servicePause | serviceUserControl,
		all:     serviceAll,
	}
)

// mapAccess maps generic rights and checks them against what the caller
// may have.
func mapAccess(req uint32, m genericMapping, admin bool, userAllowed uint32) (uint32, bool) {
	a := req &^ (genericAll | genericRead | genericWrite | genericExecute | maximumAllowed)
	if req&genericRead != 0 {
		a |= m.read
	}
	if req&genericWrite != 0 {
		a |= m.write
	}
	if req&genericExecute != 0 {
		a |= m.execute
	}
	if req&genericAll != 0 {
		a |= m.all
	}
	if req&maximumAllowed != 0 {
		if admin {
			a |= m.all
		} else {
			a |= userAllowed
		}
	}
	if !admin && a&^userAllowed != 0 {
		return 0, false
	}
	return a, true
}

// SCM is the emulated Service Control Manager. It implements go-msrpc's
// svcctl.SvcctlServer for OpenSCManagerW, CreateServiceW, OpenServiceW,
// StartServiceW, QueryServiceStatus, QueryServiceStatusEx, ControlService
// (stop, interrogate), DeleteService, ChangeServiceConfigW,
// QueryServiceConfigW and CloseServiceHandle; every other operation
// faults with nca_op_rng_error.
//
// Callers are identified by CallFromContext; in-process callers use
// WithCaller. Handles are owned by the connection that opened them and
// are released when it closes. The table lives in memory only.
type SCM struct {
	svcctl.UnimplementedSvcctlServer

	srv *Server

	mu       sync.Mutex
	services map[string]*service
	handles  map[[16]byte]*scHandle
	wg       sync.WaitGroup
	// installed is the log of services created, as System event 7045
	// keeps it: it outlives the services.
	installed []ServiceInfo
}

type scHandle struct {
	svc    *service // nil for the SCM database
	access uint32
	conn   uint64
}

type service struct {
	name, display, binPath, startName, loadOrderGroup string
	typ, start, errCtl                                uint32

	state        uint32
	win32Exit    uint32
	specificExit uint32
	pid          int
	done         chan struct{}
	stopping     bool

	deleted bool
	handles int
}

// ServiceInfo is a snapshot of one service record.
type ServiceInfo struct {
	Name, DisplayName, BinaryPath string
	ServiceType, StartType        uint32
	State                         uint32
	// PID is the process ID while the service runs, 0 otherwise.
	PID int
	// Win32ExitCode and ServiceSpecificExitCode describe the last stop.
	Win32ExitCode, ServiceSpecificExitCode uint32
	MarkedForDelete                        bool
	OpenHandles                            int
}

func newSCM(s *Server) *SCM {
	return &SCM{srv: s, services: make(map[string]*service), handles: make(map[[16]byte]*scHandle)}
}

// Installed returns every service created so far, in order, with its
// name, binary path and types as at creation, deleted ones included: what
// the System event log's event 7045 shows any local user.
func (m *SCM) Installed() []ServiceInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ServiceInfo(nil), m.installed...)
}

// Services returns a snapshot of the service table, sorted by name.
func (m *SCM) Services() []ServiceInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ServiceInfo, 0, len(m.services))
	for _, s := range m.services {
		out = append(out, ServiceInfo{
			Name: s.name, DisplayName: s.display, BinaryPath: s.binPath,
			ServiceType: s.typ, StartType: s.start, State: s.state, PID: s.pid,
			Win32ExitCode: s.win32Exit, ServiceSpecificExitCode: s.specificExit,
			MarkedForDelete: s.deleted, OpenHandles: s.handles,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

type caller struct {
	user  string
	admin bool
	conn  uint64
}

func callerOf(ctx context.Context) caller {
	c, ok := CallFromContext(ctx)
	if !ok {
		return caller{}
	}
	return caller{user: c.User, admin: c.Admin, conn: c.ConnID}
}

func nullHandle() *svcctl.Handle { return &svcctl.Handle{UUID: zeroGUID()} }

func (m *SCM) newHandle(svc *service, access uint32, conn uint64) *svcctl.Handle {
	var id [16]byte
	_, _ = rand.Read(id[:])
	m.handles[id] = &scHandle{svc: svc, access: access, conn: conn}
	if svc != nil {
		svc.handles++
	}
	return &svcctl.Handle{UUID: &dtyp.GUID{
		Data1: uint32(id[0]) | uint32(id[1])<<8 | uint32(id[2])<<16 | uint32(id[3])<<24,
		Data2: uint16(id[4]) | uint16(id[5])<<8,
		Data3: uint16(id[6]) | uint16(id[7])<<8,
		Data4: append([]byte(nil), id[8:]...),
	}}
}

func handleKey(h *svcctl.Handle) ([16]byte, bool) {
	var id [16]byte
	if h == nil || h.UUID == nil || len(h.UUID.Data4) != 8 {
		return id, false
	}
	g := h.UUID
	id[0], id[1], id[2], id[3] = byte(g.Data1), byte(g.Data1>>8), byte(g.Data1>>16), byte(g.Data1>>24)
	id[4], id[5] = byte(g.Data2), byte(g.Data2>>8)
	id[6], id[7] = byte(g.Data3), byte(g.Data3>>8)
	copy(id[8:], g.Data4)
	return id, true
}

// lookup returns the handle record (locked).
func (m *SCM) lookup(h *svcctl.Handle) (*scHandle, [16]byte, bool) {
	id, ok := handleKey(h)
	if !ok {
		return nil, id, false
	}
	rec, ok := m.handles[id]
	return rec, id, ok
}

func (m *SCM) serviceHandle(h *svcctl.Handle, need uint32) (*service, uint32) {
	rec, _, ok := m.lookup(h)
	if !ok || rec.svc == nil {
		return nil, ErrorInvalidHandle
	}
	if rec.access&need != need {
		return nil, ErrorAccessDenied
	}
	return rec.svc, ErrorSuccess
}

// maybeRemove drops a deleted service once it is stopped and has no open
// handles (locked).
func (m *SCM) maybeRemove(s *service) {
	if s.deleted && s.state == ServiceStopped && s.handles == 0 {
		if cur := m.services[strings.ToLower(s.name)]; cur == s {
			delete(m.services, strings.ToLower(s.name))
		}
	}
}

func (s *service) status() *svcctl.ServiceStatus {
	st := &svcctl.ServiceStatus{
		ServiceType:             s.typ,
		CurrentState:            s.state,
		Win32ExitCode:           s.win32Exit,
		ServiceSpecificExitCode: s.specificExit,
	}
	if s.state == ServiceRunning {
		st.ControlsAccepted = 1 // SERVICE_ACCEPT_STOP
	}
	return st
}

// OpenSCMW implements ROpenSCManagerW (opnum 15).
func (m *SCM) OpenSCMW(ctx context.Context, req *svcctl.OpenSCMWRequest) (*svcctl.OpenSCMWResponse, error) {
	c := callerOf(ctx)
	if m.srv.Faults.Deny() || c.user == "" {
		return &svcctl.OpenSCMWResponse{SCM: nullHandle(), Return: ErrorAccessDenied}, nil
	}
	if db := req.DatabaseName; db != "" && !strings.EqualFold(db, "ServicesActive") {
		return &svcctl.OpenSCMWResponse{SCM: nullHandle(), Return: ErrorDatabaseDoesNotExist}, nil
	}
	access, ok := mapAccess(req.DesiredAccess, scmMapping, c.admin, userSCMRights)
	if !ok {
		return &svcctl.OpenSCMWResponse{SCM: nullHandle(), Return: ErrorAccessDenied}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return &svcctl.OpenSCMWResponse{SCM: m.newHandle(nil, access, c.conn)}, nil
}

func validServiceName(n string) bool {
	return n != "" && len(n) <= 256 && !strings.ContainsAny(n, `/\`)
}

// CreateServiceW implements RCreateServiceW (opnum 12).
func (m *SCM) CreateServiceW(ctx context.Context, req *svcctl.CreateServiceWRequest) (*svcctl.CreateServiceWResponse, error) {
	c := callerOf(ctx)
	fail := func(code uint32) (*svcctl.CreateServiceWResponse, error) {
		return &svcctl.CreateServiceWResponse{Service: nullHandle(), Return: code}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, _, ok := m.lookup(req.ServiceManager)
	if !ok || rec.svc != nil {
		return fail(ErrorInvalidHandle)
	}
	if m.srv.Faults.Deny() || rec.access&scManagerCreateService == 0 {
		return fail(ErrorAccessDenied)
	}
	if !validServiceName(req.ServiceName) {
		return fail(ErrorInvalidName)
	}
	if strings.TrimSpace(req.BinaryPathName) == "" {
		return fail(ErrorInvalidParameter)
	}
	if old := m.services[strings.ToLower(req.ServiceName)]; old != nil {
		if old.deleted {
			return fail(ErrorServiceMarkedForDelete)
		}
		return fail(ErrorServiceExists)
	}
	access, ok := mapAccess(req.DesiredAccess, serviceMapping, c.admin, userServiceRights)
	if !ok {
		return fail(ErrorAccessDenied)
	}
	display := req.DisplayName
	if display == "" {
		display = req.ServiceName
	}
	s := &service{
		name: req.ServiceName, display: display, binPath: req.BinaryPathName,
		startName: req.ServiceStartName, loadOrderGroup: req.LoadOrderGroup,
		typ: req.ServiceType, start: req.StartType, errCtl: req.ErrorControl,
		state: ServiceStopped,
	}
	if s.startName == "" {
		s.startName = "LocalSystem"
	}
	m.services[strings.ToLower(s.name)] = s
	m.installed = append(m.installed, ServiceInfo{Name: s.name, DisplayName: s.display, BinaryPath: s.binPath, ServiceType: s.typ, StartType: s.start})
	return &svcctl.CreateServiceWResponse{Service: m.newHandle(s, access, c.conn)}, nil
}

// OpenServiceW implements ROpenServiceW (opnum 16).
func (m *SCM) OpenServiceW(ctx context.Context, req *svcctl.OpenServiceWRequest) (*svcctl.OpenServiceWResponse, error) {
	c := callerOf(ctx)
	fail := func(code uint32) (*svcctl.OpenServiceWResponse, error) {
		return &svcctl.OpenServiceWResponse{Service: nullHandle(), Return: code}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, _, ok := m.lookup(req.ServiceManager)
	if !ok || rec.svc != nil {
		return fail(ErrorInvalidHandle)
	}
	if rec.access&scManagerConnect == 0 {
		return fail(ErrorAccessDenied)
	}
	s := m.services[strings.ToLower(req.ServiceName)]
	if s == nil {
		return fail(ErrorServiceDoesNotExist)
	}
	if s.deleted {
		return fail(ErrorServiceMarkedForDelete)
	}
	access, ok := mapAccess(req.DesiredAccess, serviceMapping, c.admin, userServiceRights)
	if !ok {
		return fail(ErrorAccessDenied)
	}
	return &svcctl.OpenServiceWResponse{Service: m.newHandle(s, access, c.conn)}, nil
}

// CloseService implements RCloseServiceHandle (opnum 0).
func (m *SCM) CloseService(ctx context.Context, req *svcctl.CloseServiceRequest) (*svcctl.CloseServiceResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, id, ok := m.lookup(req.ServiceObject)
	if !ok {
		return &svcctl.CloseServiceResponse{ServiceObject: req.ServiceObject, Return: ErrorInvalidHandle}, nil
	}
	m.release(id, rec)
	return &svcctl.CloseServiceResponse{ServiceObject: nullHandle()}, nil
}

// release drops a handle (locked).
func (m *SCM) release(id [16]byte, rec *scHandle) {
	delete(m.handles, id)
	if rec.svc != nil {
		rec.svc.handles--
		m.maybeRemove(rec.svc)
	}
}

// rundown releases the handles of a closed connection.
func (m *SCM) rundown(conn uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, rec := range m.handles {
		if rec.conn == conn {
			m.release(id, rec)
		}
	}
}

// QueryServiceStatus implements RQueryServiceStatus (opnum 6).
func (m *SCM) QueryServiceStatus(ctx context.Context, req *svcctl.QueryServiceStatusRequest) (*svcctl.QueryServiceStatusResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, code := m.serviceHandle(req.Service, serviceQueryStatus)
	if code != ErrorSuccess {
		return &svcctl.QueryServiceStatusResponse{ServiceStatus: &svcctl.ServiceStatus{}, Return: code}, nil
	}
	return &svcctl.QueryServiceStatusResponse{ServiceStatus: s.status()}, nil
}

// QueryServiceStatusEx implements RQueryServiceStatusEx (opnum 40) for
// SC_STATUS_PROCESS_INFO: a SERVICE_STATUS_PROCESS with the PID.
func (m *SCM) QueryServiceStatusEx(ctx context.Context, req *svcctl.QueryServiceStatusExRequest) (*svcctl.QueryServiceStatusExResponse, error) {
	const size = 36
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.InfoLevel != svcctl.StatusTypeProcessInfo {
		return &svcctl.QueryServiceStatusExResponse{Return: ErrorInvalidLevel}, nil
	}
	s, code := m.serviceHandle(req.Service, serviceQueryStatus)
	if code != ErrorSuccess {
		return &svcctl.QueryServiceStatusExResponse{Return: code}, nil
	}
	if req.BufferLength < size {
		return &svcctl.QueryServiceStatusExResponse{BytesNeededLength: size, Return: ErrorInsufficientBuffer}, nil
	}
	st := s.status()
	buf := make([]byte, 0, size)
	for _, v := range []uint32{st.ServiceType, st.CurrentState, st.ControlsAccepted, st.Win32ExitCode,
		st.ServiceSpecificExitCode, st.CheckPoint, st.WaitHint, uint32(s.pid), 0} {
		buf = binary.LittleEndian.AppendUint32(buf, v)
	}
	return &svcctl.QueryServiceStatusExResponse{BufferLength: size, Buffer: buf, BytesNeededLength: size}, nil
}

// QueryServiceConfigW implements RQueryServiceConfigW (opnum 17).
func (m *SCM) QueryServiceConfigW(ctx context.Context, req *svcctl.QueryServiceConfigWRequest) (*svcctl.QueryServiceConfigWResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	empty := &svcctl.QueryServiceConfigW{}
	s, code := m.serviceHandle(req.Service, serviceQueryConfig)
	if code != ErrorSuccess {
		return &svcctl.QueryServiceConfigWResponse{ServiceConfig: empty, Return: code}, nil
	}
	need := 36
	for _, str := range []string{s.binPath, s.loadOrderGroup, "", s.startName, s.display} {
		need += 2 * (len([]rune(str)) + 1)
	}
	if int(req.BufferLength) < need {
		return &svcctl.QueryServiceConfigWResponse{ServiceConfig: empty, BytesNeededLength: uint32(need), Return: ErrorInsufficientBuffer}, nil
	}
	return &svcctl.QueryServiceConfigWResponse{ServiceConfig: &svcctl.QueryServiceConfigW{
		ServiceType: s.typ, StartType: s.start, ErrorControl: s.errCtl,
		BinaryPathName: s.binPath, LoadOrderGroup: s.loadOrderGroup,
		ServiceStartName: s.startName, DisplayName: s.display,
	}, BytesNeededLength: uint32(need)}, nil
}

// ChangeServiceConfigW implements RChangeServiceConfigW (opnum 11). Fields
// set to SERVICE_NO_CHANGE or left NULL are kept.
func (m *SCM) ChangeServiceConfigW(ctx context.Context, req *svcctl.ChangeServiceConfigWRequest) (*svcctl.ChangeServiceConfigWResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, code := m.serviceHandle(req.Service, serviceChangeConfig)
	if code != ErrorSuccess {
		return &svcctl.ChangeServiceConfigWResponse{Return: code}, nil
	}
	if s.deleted {
		return &svcctl.ChangeServiceConfigWResponse{Return: ErrorServiceMarkedForDelete}, nil
	}
	if req.ServiceType != serviceNoChange {
		s.typ = req.ServiceType
	}
	if req.StartType != serviceNoChange {
		s.start = req.StartType
	}
	if req.ErrorControl != serviceNoChange {
		s.errCtl = req.ErrorControl
	}
	if req.BinaryPathName != "" {
		s.binPath = req.BinaryPathName
	}
	if req.LoadOrderGroup != "" {
		s.loadOrderGroup = req.LoadOrderGroup
	}
	if req.ServiceStartName != "" {
		s.startName = req.ServiceStartName
	}
	if req.DisplayName != "" {
		s.display = req.DisplayName
	}
	return &svcctl.ChangeServiceConfigWResponse{}, nil
}

// DeleteService implements RDeleteService (opnum 2): the service is marked
// for deletion and disappears once it is stopped and its last handle is
// closed.
func (m *SCM) DeleteService(ctx context.Context, req *svcctl.DeleteServiceRequest) (*svcctl.DeleteServiceResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, code := m.serviceHandle(req.Service, accessDelete)
	if code != ErrorSuccess {
		return &svcctl.DeleteServiceResponse{Return: code}, nil
	}
	if s.deleted {
		return &svcctl.DeleteServiceResponse{Return: ErrorServiceMarkedForDelete}, nil
	}
	s.deleted = true
	m.maybeRemove(s)
	return &svcctl.DeleteServiceResponse{}, nil
}

// ServiceStatusFDEnv names the environment variable through which a
// service process started by StartServiceW reports to the emulated SCM,
// as a Windows service does through StartServiceCtrlDispatcher and
// SetServiceStatus: its value is the number of an inherited file
// descriptor (a pipe) on which the process writes the line "running"
// once it runs. It is absent when Server.ServiceStartTimeout is negative.
const ServiceStatusFDEnv = "WINEMU_SERVICE_STATUS_FD"

// DefaultServiceStartTimeout is Windows' default ServicesPipeTimeout, the
// wait of StartService when Server.ServiceStartTimeout is zero.
const DefaultServiceStartTimeout = 30 * time.Second

func (s *Server) serviceStartTimeout() time.Duration {
	if s.ServiceStartTimeout == 0 {
		return DefaultServiceStartTimeout
	}
	return s.ServiceStartTimeout
}

// StartServiceW implements RStartServiceW (opnum 19). It maps the
// service's binary path under Server.Root and runs it with the command
// line's arguments followed by the StartService arguments, in its own
// process group, with WINEMU_SERVICE_NAME and ServiceStatusFDEnv in its
// environment. The service is START_PENDING until the process writes
// "running" on that descriptor; StartService then returns success and
// the service is RUNNING. A process that does not report within
// Server.ServiceStartTimeout, or exits first, has its process group
// killed and StartService fails with ERROR_SERVICE_REQUEST_TIMEOUT
// (1053), Windows' order; so is a process whose wait the call's context
// ends (the connection or the server closing), where Windows' SCM would
// go on waiting. It does not emulate START_PENDING after the
// process has connected (the first report is both the connection and
// SERVICE_RUNNING), nor other states a service may report. A binary the
// kernel cannot execute fails with ERROR_BAD_EXE_FORMAT (193).
func (m *SCM) StartServiceW(ctx context.Context, req *svcctl.StartServiceWRequest) (*svcctl.StartServiceWResponse, error) {
	ret := func(code uint32) (*svcctl.StartServiceWResponse, error) {
		return &svcctl.StartServiceWResponse{Return: code}, nil
	}
	if hook := m.srv.BeforeStart; hook != nil {
		m.mu.Lock()
		bin := ""
		if s, code := m.serviceHandle(req.Service, serviceStart); code == ErrorSuccess {
			bin = s.binPath
		}
		m.mu.Unlock()
		if bin != "" {
			hook("scm", bin)
		}
	}
	m.mu.Lock()
	s, code := m.serviceHandle(req.Service, serviceStart)
	if code != ErrorSuccess {
		m.mu.Unlock()
		return ret(code)
	}
	if s.deleted {
		m.mu.Unlock()
		return ret(ErrorServiceMarkedForDelete)
	}
	if s.state != ServiceStopped {
		m.mu.Unlock()
		return ret(ErrorServiceAlreadyRunning)
	}
	exe, args, err := ParseCommandLine(s.binPath)
	if err != nil {
		m.mu.Unlock()
		return ret(ErrorFileNotFound)
	}
	path, err := MapPath(m.srv.Root, exe)
	if err != nil || m.srv.Root == "" {
		m.mu.Unlock()
		return ret(ErrorPathNotFound)
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		m.mu.Unlock()
		return ret(ErrorFileNotFound)
	}
	for _, a := range req.Argv {
		if a != nil {
			args = append(args, a.StringPointer)
		}
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = m.srv.Root
	cmd.Env = append(os.Environ(), "WINEMU_SERVICE_NAME="+s.name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if w := m.srv.ProcessOutput; w != nil {
		cmd.Stdout, cmd.Stderr = w, w
	}
	timeout := m.srv.serviceStartTimeout()
	var statusR, statusW *os.File
	if timeout > 0 {
		var err error
		if statusR, statusW, err = os.Pipe(); err != nil {
			m.mu.Unlock()
			return nil, err
		}
		cmd.ExtraFiles = []*os.File{statusW} // descriptor 3 in the child
		cmd.Env = append(cmd.Env, ServiceStatusFDEnv+"=3")
	}
	err = cmd.Start()
	if statusW != nil {
		statusW.Close()
	}
	if err != nil {
		if statusR != nil {
			statusR.Close()
		}
		m.mu.Unlock()
		switch {
		case errors.Is(err, fs.ErrPermission):
			return ret(ErrorAccessDenied)
		case errors.Is(err, syscall.ENOEXEC):
			return ret(ErrorBadExeFormat)
		default:
			return ret(ErrorFileNotFound)
		}
	}
	s.state, s.pid, s.win32Exit, s.specificExit, s.stopping = ServiceStartPending, cmd.Process.Pid, 0, 0, false
	if statusR == nil {
		s.state = ServiceRunning
	}
	done := make(chan struct{})
	s.done = done
	m.wg.Add(1)
	go m.wait(s, cmd, done)
	pid := s.pid
	m.mu.Unlock()
	m.srv.Logger.Info("service process started", "service", s.name, "pid", pid, "path", path)

	timedOut := func(why string) (*svcctl.StartServiceWResponse, error) {
		m.srv.Logger.Info("service did not report running", "service", s.name, "pid", pid, "why", why)
		m.mu.Lock()
		s.stopping = true
		m.mu.Unlock()
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
		m.mu.Lock()
		s.win32Exit = ErrorServiceRequestTimeout
		m.mu.Unlock()
		return ret(ErrorServiceRequestTimeout)
	}
	if m.srv.Faults.ServiceDidNotStart() {
		if statusR != nil {
			statusR.Close()
		}
		return timedOut("did-not-start fault")
	}
	if statusR == nil {
		return ret(ErrorSuccess)
	}
	reported, finished := make(chan struct{}), make(chan struct{})
	go readServiceReport(statusR, reported, finished)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-reported:
	case <-done:
		// A report written just before exit is still in the pipe.
		select {
		case <-reported:
		case <-finished:
			return timedOut("process exited")
		case <-t.C:
			statusR.Close()
			return timedOut("timeout " + timeout.String())
		}
	case <-t.C:
		statusR.Close()
		return timedOut("timeout " + timeout.String())
	case <-ctx.Done():
		statusR.Close()
		return timedOut("call cancelled")
	}
	m.mu.Lock()
	if s.done == done && s.state == ServiceStartPending {
		s.state = ServiceRunning
	}
	m.mu.Unlock()
	m.srv.Logger.Info("service reported running", "service", s.name, "pid", pid)
	return ret(ErrorSuccess)
}

// readServiceReport reads a service process's status pipe until the line
// "running", then closes reported and the pipe. It returns without
// closing reported at end of file or when the pipe is closed under it.
// It closes finished when it returns.
func readServiceReport(r *os.File, reported, finished chan<- struct{}) {
	defer close(finished)
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "running" {
			close(reported)
			return
		}
	}
}

// wait reaps a service process and records how it ended.
func (m *SCM) wait(s *service, cmd *exec.Cmd, done chan struct{}) {
	defer m.wg.Done()
	_ = cmd.Wait()
	m.mu.Lock()
	code := cmd.ProcessState.ExitCode()
	switch {
	case s.stopping:
		s.win32Exit, s.specificExit = 0, 0
	case code == 0:
		s.win32Exit = 0
	case code > 0:
		s.win32Exit, s.specificExit = ErrorServiceSpecificError, uint32(code)
	default:
		s.win32Exit = ErrorProcessAborted
	}
	s.state, s.pid, s.done = ServiceStopped, 0, nil
	m.maybeRemove(s)
	m.mu.Unlock()
	close(done)
	m.srv.Logger.Info("service process exited", "service", s.name, "exit", code)
}

// stopTimeout is how long a stopped process gets between SIGTERM and
// SIGKILL.
const stopTimeout = 2 * time.Second

// stop terminates a running service's process group and waits for it.
func (m *SCM) stop(s *service) {
	m.mu.Lock()
	done, pid := s.done, s.pid
	if done == nil || pid == 0 {
		m.mu.Unlock()
		return
	}
	s.stopping = true
	s.state = ServiceStopPending
	m.mu.Unlock()
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-done
}

// ControlService implements RControlService (opnum 1) for
// SERVICE_CONTROL_STOP and SERVICE_CONTROL_INTERROGATE.
func (m *SCM) ControlService(ctx context.Context, req *svcctl.ControlServiceRequest) (*svcctl.ControlServiceResponse, error) {
	need := uint32(serviceInterrogate)
	switch req.Control {
	case controlStop:
		need = serviceStop
	case controlInterrogate:
	case 2, 3, 6, 7, 8, 9, 10:
		need = servicePause
	default:
		if req.Control < 128 || req.Control > 255 {
			return &svcctl.ControlServiceResponse{ServiceStatus: &svcctl.ServiceStatus{}, Return: ErrorInvalidParameter}, nil
		}
		need = serviceUserControl
	}
	m.mu.Lock()
	s, code := m.serviceHandle(req.Service, need)
	if code != ErrorSuccess {
		m.mu.Unlock()
		return &svcctl.ControlServiceResponse{ServiceStatus: &svcctl.ServiceStatus{}, Return: code}, nil
	}
	if s.state != ServiceRunning {
		st := s.status()
		m.mu.Unlock()
		return &svcctl.ControlServiceResponse{ServiceStatus: st, Return: ErrorServiceNotActive}, nil
	}
	if req.Control != controlStop {
		st := s.status()
		m.mu.Unlock()
		if req.Control == controlInterrogate {
			return &svcctl.ControlServiceResponse{ServiceStatus: st}, nil
		}
		return &svcctl.ControlServiceResponse{ServiceStatus: st, Return: ErrorInvalidServiceControl}, nil
	}
	m.mu.Unlock()
	m.stop(s)
	m.mu.Lock()
	st := s.status()
	m.mu.Unlock()
	return &svcctl.ControlServiceResponse{ServiceStatus: st}, nil
}

// close stops every running service unless the server keeps processes,
// and waits for the reapers.
func (m *SCM) close() {
	if m.srv.KeepProcesses {
		return
	}
	m.mu.Lock()
	var running []*service
	kept := false
	for _, s := range m.services {
		if s.done == nil {
			continue
		}
		if m.keep(s.name) {
			kept = true
			m.srv.Logger.Info("service process left running", "service", s.name, "pid", s.pid)
			continue
		}
		running = append(running, s)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.stop(s)
		}()
	}
	wg.Wait()
	if !kept {
		m.wg.Wait()
	}
}

// keep reports whether a service's process is to outlive the server.
func (m *SCM) keep(name string) bool {
	for _, pat := range m.srv.KeepServices {
		if ok, _ := path.Match(strings.ToLower(pat), strings.ToLower(name)); ok {
			return true
		}
	}
	return false
}

var _ svcctl.SvcctlServer = (*SCM)(nil)
