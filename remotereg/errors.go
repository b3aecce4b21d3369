package remotereg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// Win32Error is a Windows error code returned by an MS-SCMR or MS-RRP
// call (MS-ERREF 2.2). errors.Is matches it by value, for example
// errors.Is(err, remotereg.ErrorAccessDenied).
type Win32Error uint32

// The Win32 codes remotereg interprets.
const (
	ErrorFileNotFound           Win32Error = 2
	ErrorAccessDenied           Win32Error = 5
	ErrorInvalidHandle          Win32Error = 6
	ErrorInvalidParameter       Win32Error = 87
	ErrorInvalidName            Win32Error = 123
	ErrorMoreData               Win32Error = 234
	ErrorNoMoreItems            Win32Error = 259
	ErrorBadExeFormat           Win32Error = 193
	ErrorServiceRequestTimeout  Win32Error = 1053
	ErrorServiceAlreadyRunning  Win32Error = 1056
	ErrorServiceDisabled        Win32Error = 1058
	ErrorServiceDoesNotExist    Win32Error = 1060
	ErrorServiceCannotAcceptCtl Win32Error = 1061
	ErrorServiceNotActive       Win32Error = 1062
	ErrorServiceMarkedForDelete Win32Error = 1072
	ErrorServiceExists          Win32Error = 1073
	ErrorDuplicateServiceName   Win32Error = 1078
	ErrorNotSupported           Win32Error = 50
	ErrorCallNotImplemented     Win32Error = 120
)

// Error returns the symbolic name, the number and what the code means
// for a technician (diag.Win32Text), for example
// "ERROR_NOT_ENOUGH_MEMORY (8): the computer ran out of memory ...".
// A code diag does not know reads "win32 error N".
func (e Win32Error) Error() string { return diag.Win32Text(uint32(e)) }

// short is the name and the number without the explanation, for a
// diagnosis that explains the code itself.
func (e Win32Error) short() string {
	name, _ := diag.Win32(uint32(e))
	if strings.HasPrefix(name, "win32 error") {
		return name
	}
	return fmt.Sprintf("%s (%d)", name, uint32(e))
}

// RPC fault and reject codes (MS-RPCE 2.2.2.11 / 3.1.1.5.5) that mean the
// server does not implement what we called.
const (
	ncaOpRngError    = 0x1C010002 // nca_op_rng_error: opnum out of range
	ncaUnkIf         = 0x1C010003 // nca_unk_if: interface not served
	rpcSUnknownIf    = 0x000006B5 // RPC_S_UNKNOWN_IF
	rpcSProcnumOOR   = 0x000006D1 // RPC_S_PROCNUM_OUT_OF_RANGE
	rpcSCannotSupp   = 0x000006E4 // RPC_S_CANNOT_SUPPORT
	rpcSAccessDenied = 0x00000005 // fault status 5: access denied
)

// failure builds the *deploy.LaunchError for err at step, choosing the
// kind and the diagnosis. endpoint names where the call went ("\pipe\svcctl
// on host", "host:135", ...) for the diagnoses that need it.
func (l *Launcher) failure(step, endpoint string, err error) error {
	if err == nil {
		return nil
	}
	var le *deploy.LaunchError
	if errors.As(err, &le) {
		return err
	}
	diag, kind := classify(step, endpoint, err)
	return &deploy.LaunchError{Launcher: l.Name(), Step: step, Kind: kind, Diagnosis: diag, Err: err}
}

// classify maps an error to a launch error kind and a diagnosis.
func classify(step, endpoint string, err error) (diag.Diagnosis, error) {
	var w Win32Error
	switch {
	case errors.Is(err, rpcauth.ErrIntegrity):
		return diag.Diagnosis{
			Code:    diag.RPCIntegrity,
			Summary: "A sealed response from " + endpoint + " failed its signature check: it was altered on the way, or the peer is not the computer that authenticated us.",
			Fix:     "Do not trust this network path; check for a man-in-the-middle.",
		}, nil
	case errors.Is(err, errMarkedNoReopen):
		return diag.Diagnosis{
			Code: diag.ServiceMarkedForDeletion,
			Summary: "The connection to the Service Control Manager at " + endpoint + " was lost, and the applet's service, already marked for deletion, " +
				"cannot be reopened: it disappears when the applet exits.",
			Fix: "Stop the applet through its console connection, or set Launcher.KeepService to keep control through the SCM.",
		}, nil
	case errors.Is(err, context.Canceled):
		return diag.Diagnosis{Code: diag.Canceled, Summary: "The launch was canceled."}, nil
	case errors.As(err, &w):
		return classifyWin32(step, endpoint, w)
	}
	if st, ok := rpcauth.FaultStatus(err); ok {
		switch st {
		case ncaOpRngError, ncaUnkIf, rpcSUnknownIf, rpcSProcnumOOR, rpcSCannotSupp, uint32(ErrorNotSupported), uint32(ErrorCallNotImplemented):
			return diag.Diagnosis{
				Code:    diag.SCMNotSupported,
				Summary: fmt.Sprintf("The server at %s does not implement %s (RPC status 0x%08X).", endpoint, step, st),
				Fix:     "Another launch method is needed for this computer.",
			}, deploy.ErrLaunchUnsupported
		case rpcSAccessDenied:
			return accessDenied(endpoint), deploy.ErrAccessDenied
		}
	}
	switch {
	case errors.Is(err, smbconn.StatusPipeNotAvailable), errors.Is(err, smbconn.StatusObjectNameNotFound):
		return diag.Diagnosis{
			Code:    diag.PipeNotAvailable,
			Summary: "The named pipe " + endpoint + " is not available: the service behind it is not running or not installed.",
			Fix:     "Start the service on the computer, or use another launch method.",
		}, deploy.ErrUnreachable
	case errors.Is(err, smbconn.StatusAccessDenied), errors.Is(err, smbconn.StatusNetworkAccessDenied):
		return accessDenied(endpoint), deploy.ErrAccessDenied
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		return diag.Diagnosis{
			Code:    diag.EndpointUnreachable,
			Summary: "Nothing accepted the connection at " + endpoint + ".",
			Fix:     "Check that the computer's firewall allows it and the service is running.",
		}, deploy.ErrUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		if step == "start service" {
			return diag.Diagnosis{
				Code: diag.StartTimeout,
				Summary: "StartService at " + endpoint + " did not return before the deadline: Windows waits up to 30 s for a service " +
					"to report SERVICE_RUNNING, so the applet is probably not service-aware.",
				Fix: "Allow more time, build the applet as a Windows service, or use another launch method.",
			}, deploy.ErrTimeout
		}
		return diag.Diagnosis{
			Code:    diag.EndpointTimeout,
			Summary: "No answer from " + endpoint + " during " + step + " before the deadline.",
			Fix:     "A firewall may drop the traffic, or the service hangs.",
		}, deploy.ErrTimeout
	}
	return diag.Diagnosis{}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func classifyWin32(step, endpoint string, w Win32Error) (diag.Diagnosis, error) {
	switch w {
	case ErrorAccessDenied:
		return accessDenied(endpoint), deploy.ErrAccessDenied
	case ErrorServiceExists, ErrorDuplicateServiceName, ErrorServiceMarkedForDelete:
		return diag.Diagnosis{
			Code:    diag.ServiceExists,
			Summary: "A service with the chosen name already exists on the computer (" + w.short() + ").",
			Fix:     "Pick another service name prefix, or remove the leftover service.",
		}, deploy.ErrServiceExists
	case ErrorServiceRequestTimeout:
		return diag.Diagnosis{
			Code:    diag.AppletNotServiceAware,
			Summary: "The applet is not a service: it started but never told the Service Control Manager it was running, so Windows stopped it (error 1053).",
			Fix:     "Use a service-aware applet (on Windows, built with golang.org/x/sys/windows/svc), or launch it with WMI.",
		}, deploy.ErrNotServiceAware
	case ErrorBadExeFormat:
		return diag.Diagnosis{
			Code:    diag.AppletWrongArchitecture,
			Summary: "The applet is not a Windows program for this computer's architecture (error 193, ERROR_BAD_EXE_FORMAT), or its file is damaged.",
			Fix:     "Deploy the applet built for this computer's processor (x64, x86 or ARM64), or copy it again.",
		}, deploy.ErrNotExecutable
	case ErrorNotSupported, ErrorCallNotImplemented:
		return diag.Diagnosis{
			Code:    diag.SCMNotSupported,
			Summary: "The server at " + endpoint + " does not support " + step + ".",
			Fix:     "Another launch method is needed for this computer.",
		}, deploy.ErrLaunchUnsupported
	case ErrorServiceDisabled:
		return diag.Diagnosis{
			Code:    diag.ServiceDisabled,
			Summary: "The service is disabled.",
		}, nil
	}
	return diag.Diagnosis{}, nil
}

func accessDenied(endpoint string) diag.Diagnosis {
	return diag.Diagnosis{
		Code: diag.AccessDenied,
		Summary: "The computer refused the operation at " + endpoint + " (access denied): the account is not an administrator there, " +
			"or it is a local administrator whose token UAC remote restrictions filter.",
		Fix: "Use a domain administrator or the built-in Administrator, or set " +
			`HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\LocalAccountTokenFilterPolicy=1 on the computer.`,
	}
}

// leftBehind marks a failed launch whose service could not be removed
// afterwards: the error also matches deploy.ErrAttemptLeftBehind, and its
// diagnosis says what may still be on the target.
func leftBehind(err error, what string, cause error) error {
	var le *deploy.LaunchError
	if !errors.As(err, &le) {
		return fmt.Errorf("%w (and %s could not be removed: %w: %w)", err, what, deploy.ErrAttemptLeftBehind, cause)
	}
	c := *le
	c.Err = fmt.Errorf("%w (and %s could not be removed: %w: %w)", le.Err, what, deploy.ErrAttemptLeftBehind, cause)
	c.Diagnosis.Summary = strings.TrimSpace(c.Diagnosis.Summary + " The " + what + " that this attempt created could not be removed, so no other launch method was tried: the applet may still be running.")
	c.Diagnosis.Fix = strings.TrimSpace(c.Diagnosis.Fix + " Close the session to retry the cleanup, or remove the " + what + " on the computer (sc delete).")
	return &c
}
