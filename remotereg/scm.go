package remotereg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"

	"github.com/lanconnect/lanconnect/internal/rpcauth"
)

// MS-SCMR constants (2.2.x).
const (
	scManagerConnect       = 0x0001
	scManagerCreateService = 0x0002

	serviceQueryConfig  = 0x0001
	serviceChangeConfig = 0x0002
	serviceQueryStatus  = 0x0004
	serviceStart        = 0x0010
	serviceStop         = 0x0020
	accessDelete        = 0x00010000

	serviceWin32OwnProcess = 0x00000010
	serviceErrorNormal     = 0x00000001
	serviceNoChange        = 0xFFFFFFFF
	serviceControlStop     = 0x00000001
)

// StartType is a service start type (MS-SCMR 2.2.15, dwStartType).
type StartType uint32

// The start types remotereg reads and sets.
const (
	StartBoot     StartType = 0
	StartSystem   StartType = 1
	StartAuto     StartType = 2
	StartDemand   StartType = 3
	StartDisabled StartType = 4
)

// String returns the SERVICE_*_START name.
func (t StartType) String() string {
	switch t {
	case StartBoot:
		return "SERVICE_BOOT_START"
	case StartSystem:
		return "SERVICE_SYSTEM_START"
	case StartAuto:
		return "SERVICE_AUTO_START"
	case StartDemand:
		return "SERVICE_DEMAND_START"
	case StartDisabled:
		return "SERVICE_DISABLED"
	}
	return fmt.Sprintf("StartType(%d)", uint32(t))
}

// State is a service's current state (MS-SCMR 2.2.47, dwCurrentState).
type State uint32

// The service states.
const (
	StateStopped         State = 1
	StateStartPending    State = 2
	StateStopPending     State = 3
	StateRunning         State = 4
	StateContinuePending State = 5
	StatePausePending    State = 6
	StatePaused          State = 7
)

// String returns the SERVICE_* name.
func (s State) String() string {
	switch s {
	case StateStopped:
		return "SERVICE_STOPPED"
	case StateStartPending:
		return "SERVICE_START_PENDING"
	case StateStopPending:
		return "SERVICE_STOP_PENDING"
	case StateRunning:
		return "SERVICE_RUNNING"
	case StateContinuePending:
		return "SERVICE_CONTINUE_PENDING"
	case StatePausePending:
		return "SERVICE_PAUSE_PENDING"
	case StatePaused:
		return "SERVICE_PAUSED"
	}
	return fmt.Sprintf("State(%d)", uint32(s))
}

// errServiceStopped is the cause when a service stops while we wait for
// it to run.
var errServiceStopped = errors.New("service stopped before it reported running")

// scm is an open Service Control Manager on one svcctl connection.
type scm struct {
	cli svcctl.SvcctlClient
	mgr *svcctl.Handle
}

// openSCM opens the SCM database with access.
func openSCM(ctx context.Context, cli svcctl.SvcctlClient, access uint32) (*scm, error) {
	resp, err := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{DesiredAccess: access})
	if err = result(retOf(resp), err); err != nil {
		return nil, err
	}
	return &scm{cli: cli, mgr: resp.SCM}, nil
}

// result turns a generated client's result into one error: the Win32
// return code when the call completed (ret is non-nil), else the
// transport or fault error.
func result(ret *uint32, err error) error {
	if ret != nil && *ret != 0 {
		return Win32Error(*ret)
	}
	return err
}

// closeTimeout bounds each close call: closing must not hang on a
// connection that died, and it runs after the caller's context ended.
const closeTimeout = 2 * time.Second

// closeContext returns a context for a close call: ctx's values, not its
// cancellation, and closeTimeout.
func closeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
}

func (s *scm) close(ctx context.Context) {
	if s == nil || s.mgr == nil {
		return
	}
	if ctx.Err() != nil {
		// A call cancelled in flight leaves the connection unusable; the
		// handle dies with it.
		s.mgr = nil
		return
	}
	cctx, cancel := closeContext(ctx)
	defer cancel()
	_, _ = s.cli.CloseService(cctx, &svcctl.CloseServiceRequest{ServiceObject: s.mgr})
	s.mgr = nil
}

func (s *scm) create(ctx context.Context, name, display, cmdline string, start StartType) (*svcctl.Handle, error) {
	resp, err := s.cli.CreateServiceW(ctx, &svcctl.CreateServiceWRequest{
		ServiceManager: s.mgr,
		ServiceName:    name,
		DisplayName:    display,
		DesiredAccess:  serviceQueryStatus | serviceQueryConfig | serviceStart | serviceStop | accessDelete,
		ServiceType:    serviceWin32OwnProcess,
		StartType:      uint32(start),
		ErrorControl:   serviceErrorNormal,
		BinaryPathName: cmdline,
	})
	if err = result(retOf(resp), err); err != nil {
		return nil, err
	}
	return resp.Service, nil
}

func (s *scm) open(ctx context.Context, name string, access uint32) (*svcctl.Handle, error) {
	resp, err := s.cli.OpenServiceW(ctx, &svcctl.OpenServiceWRequest{ServiceManager: s.mgr, ServiceName: name, DesiredAccess: access})
	if err = result(retOf(resp), err); err != nil {
		return nil, err
	}
	return resp.Service, nil
}

func (s *scm) closeService(ctx context.Context, h *svcctl.Handle) {
	if h != nil && ctx.Err() == nil {
		cctx, cancel := closeContext(ctx)
		defer cancel()
		_, _ = s.cli.CloseService(cctx, &svcctl.CloseServiceRequest{ServiceObject: h})
	}
}

func (s *scm) start(ctx context.Context, h *svcctl.Handle) error {
	resp, err := s.cli.StartServiceW(ctx, &svcctl.StartServiceWRequest{Service: h})
	return result(retOf(resp), err)
}

func (s *scm) status(ctx context.Context, h *svcctl.Handle) (*svcctl.ServiceStatus, error) {
	resp, err := s.cli.QueryServiceStatus(ctx, &svcctl.QueryServiceStatusRequest{Service: h})
	if err = result(retOf(resp), err); err != nil {
		return nil, err
	}
	if resp.ServiceStatus == nil {
		return nil, errors.New("QueryServiceStatus returned no status")
	}
	return resp.ServiceStatus, nil
}

// pid returns the service's process ID through QueryServiceStatusEx
// (SC_STATUS_PROCESS_INFO), or 0 when the server cannot tell.
func (s *scm) pid(ctx context.Context, h *svcctl.Handle) uint32 {
	const size = 36 // SERVICE_STATUS_PROCESS
	resp, err := s.cli.QueryServiceStatusEx(ctx, &svcctl.QueryServiceStatusExRequest{Service: h, InfoLevel: 0, BufferLength: size})
	if result(retOf(resp), err) != nil || len(resp.Buffer) < 32 {
		return 0
	}
	return binary.LittleEndian.Uint32(resp.Buffer[28:32])
}

func (s *scm) config(ctx context.Context, h *svcctl.Handle) (*svcctl.QueryServiceConfigW, error) {
	resp, err := s.cli.QueryServiceConfigW(ctx, &svcctl.QueryServiceConfigWRequest{Service: h, BufferLength: 8192})
	if err = result(retOf(resp), err); err != nil {
		return nil, err
	}
	if resp.ServiceConfig == nil {
		return nil, errors.New("QueryServiceConfigW returned no configuration")
	}
	return resp.ServiceConfig, nil
}

func (s *scm) setStartType(ctx context.Context, h *svcctl.Handle, t StartType) error {
	resp, err := s.cli.ChangeServiceConfigW(ctx, &svcctl.ChangeServiceConfigWRequest{
		Service:      h,
		ServiceType:  serviceNoChange,
		StartType:    uint32(t),
		ErrorControl: serviceNoChange,
	})
	return result(retOf(resp), err)
}

func (s *scm) stop(ctx context.Context, h *svcctl.Handle) error {
	resp, err := s.cli.ControlService(ctx, &svcctl.ControlServiceRequest{Service: h, Control: serviceControlStop})
	return result(retOf(resp), err)
}

func (s *scm) delete(ctx context.Context, h *svcctl.Handle) error {
	resp, err := s.cli.DeleteService(ctx, &svcctl.DeleteServiceRequest{Service: h})
	return result(retOf(resp), err)
}

// waitState polls the service with back-off until it reaches want, or
// ctx ends. Waiting for StateRunning fails with errServiceStopped (and the
// service's exit code) when the service falls back to STOPPED.
func (s *scm) waitState(ctx context.Context, h *svcctl.Handle, want State, b rpcauth.Backoff) (*svcctl.ServiceStatus, error) {
	var last *svcctl.ServiceStatus
	var permanent error
	err := b.Retry(ctx, func(ctx context.Context) error {
		st, err := s.status(ctx, h)
		if err != nil {
			permanent = err
			return err
		}
		last = st
		switch got := State(st.CurrentState); {
		case got == want:
			return nil
		case want == StateRunning && got == StateStopped:
			permanent = fmt.Errorf("%w (exit code %d, service exit code %d)", errServiceStopped, st.Win32ExitCode, st.ServiceSpecificExitCode)
			if st.Win32ExitCode == uint32(ErrorServiceRequestTimeout) {
				permanent = fmt.Errorf("%w: %w", permanent, ErrorServiceRequestTimeout)
			}
			return permanent
		}
		return errNotYet
	}, func(err error) bool { return errors.Is(err, errNotYet) })
	if err != nil && permanent != nil && !errors.Is(err, errNotYet) {
		return last, permanent
	}
	if err != nil && last != nil {
		err = fmt.Errorf("%w (last state %v)", err, State(last.CurrentState))
	}
	return last, err
}

var errNotYet = errors.New("not yet")

// defaultWait is how long Launch waits for SERVICE_RUNNING by default.
const defaultWait = 30 * time.Second

// retOf returns a pointer to the Return field of a generated response, or
// nil when the call produced no response.
func retOf[T any](resp *T) *uint32 {
	if resp == nil {
		return nil
	}
	switch r := any(resp).(type) {
	case *svcctl.OpenSCMWResponse:
		return &r.Return
	case *svcctl.CreateServiceWResponse:
		return &r.Return
	case *svcctl.OpenServiceWResponse:
		return &r.Return
	case *svcctl.StartServiceWResponse:
		return &r.Return
	case *svcctl.QueryServiceStatusResponse:
		return &r.Return
	case *svcctl.QueryServiceStatusExResponse:
		return &r.Return
	case *svcctl.QueryServiceConfigWResponse:
		return &r.Return
	case *svcctl.ChangeServiceConfigWResponse:
		return &r.Return
	case *svcctl.ControlServiceResponse:
		return &r.Return
	case *svcctl.DeleteServiceResponse:
		return &r.Return
	case *svcctl.CloseServiceResponse:
		return &r.Return
	}
	return nil
}
