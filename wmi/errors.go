package wmi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/oiweiwei/go-msrpc/ssp/gssapi"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
)

// The steps of a WMI launch, as they appear in LaunchError.Step and
// EndpointError.Step.
const (
	StepConnect        = "connect"         // TCP 135: dial and bind IObjectExporter
	StepServerAlive    = "server alive"    // IObjectExporter.ServerAlive2
	StepActivate       = "activate"        // IActivation.RemoteActivation of WbemLevel1Login
	StepConnectDynamic = "connect dynamic" // the OXID's dynamic port: dial and bind
	StepLogin          = "login"           // IWbemLevel1Login.NTLMLogin
	StepGetClass       = "get class"       // IWbemServices.GetObject
	StepCreate         = "create process"  // IWbemServices.ExecMethod Win32_Process.Create
	StepConfirm        = "confirm"         // ExecQuery for the new ProcessId
	StepQuery          = "query"           // ExecQuery and IEnumWbemClassObject.Next
	StepTerminate      = "terminate"       // Win32_Process.Terminate
	StepRelease        = "release"         // IRemUnknown2.RemRelease
	StepValidate       = "validate"        // the LaunchSpec
)

// ErrNoAnswer is matched (errors.Is) when a step got no answer before its
// deadline; the error also matches context.DeadlineExceeded.
var ErrNoAnswer = errors.New("wmi: no answer before the step deadline")

// ErrProcessNotFound is matched when the process that Create reported is
// not running when the launch is confirmed (it exited at once).
var ErrProcessNotFound = errors.New("wmi: the created process is not running")

// EndpointError is a failure at one TCP endpoint of the target: port 135
// (the RPC endpoint mapper and DCOM activation) or the dynamic port that
// the object exporter named for WMI.
type EndpointError struct {
	// Step is the step that failed (StepConnect, StepConnectDynamic...).
	Step string
	// Addr and Port are the endpoint.
	Addr string
	Port int
	// Dynamic is true for the port named by the OXID bindings.
	Dynamic bool
	// Dial is true when the TCP connection itself failed (refused or
	// filtered), false when it was established and then failed.
	Dial bool
	// Err is the cause.
	Err error
}

// Error names the endpoint and the cause's root, never credentials: "port
// 135 on 10.0.0.5: ...", or for a failed TCP connect the dial alone
// ("dial tcp 10.0.0.5:135: connection refused"), which names the
// endpoint itself. It leaves the package and the step to the
// *deploy.LaunchError that carries it, so that the chain says each once;
// the %+v verb prints them and the cause's full, unsummarised text (what
// connect -v shows).
func (e *EndpointError) Error() string { return e.text(false) }

// Format prints Error for %v and %s (quoted for %q), and the raw chain
// for %+v.
func (e *EndpointError) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", e.text(false))
		return
	}
	io.WriteString(f, e.text(verb == 'v' && f.Flag('+')))
}

func (e *EndpointError) text(raw bool) string {
	kind := "port"
	if e.Dynamic {
		kind = "dynamic port"
	}
	if raw {
		return fmt.Sprintf("wmi: %s: %s %d on %s: %+v", e.Step, kind, e.Port, e.Addr, e.Err)
	}
	var oe *net.OpError
	if e.Dial && errors.As(e.Err, &oe) {
		return rpcauth.Cause(e.Err)
	}
	// The *deploy.LaunchError around this error says "wmi" already.
	return fmt.Sprintf("%s %d on %s: %s", kind, e.Port, e.Addr, strings.TrimPrefix(rpcauth.Cause(e.Err), "wmi: "))
}

// Unwrap returns the cause.
func (e *EndpointError) Unwrap() error { return e.Err }

// HResult is a COM or WMI status code returned by a DCOM or WMI method
// (MS-ERREF 2.1, MS-WMI 2.2.11). errors.Is matches it by value.
type HResult uint32

// The status codes wmi interprets.
const (
	EAccessDenied      HResult = 0x80070005 // E_ACCESSDENIED
	ENoInterface       HResult = 0x80004002 // E_NOINTERFACE
	RegdbEClassNotReg  HResult = 0x80040154 // REGDB_E_CLASSNOTREG
	WBEMEAccessDenied  HResult = 0x80041003 // WBEM_E_ACCESS_DENIED
	WBEMENotFound      HResult = 0x80041002 // WBEM_E_NOT_FOUND
	WBEMEInvalidNS     HResult = 0x8004100E // WBEM_E_INVALID_NAMESPACE
	WBEMEInvalidClass  HResult = 0x80041010 // WBEM_E_INVALID_CLASS
	WBEMEInvalidQuery  HResult = 0x80041017 // WBEM_E_INVALID_QUERY
	WBEMEInvalidMethod HResult = 0x8004102E // WBEM_E_INVALID_METHOD
	WBEMEInvalidParam  HResult = 0x80041008 // WBEM_E_INVALID_PARAMETER
	WBEMSFalse         HResult = 0x00000001 // WBEM_S_FALSE
)

// Error returns the symbolic name, the code and what it means for a
// technician (diag.HResultText), for example "WBEM_E_ACCESS_DENIED
// (0x80041003): the account lacks ...". A code diag does not know reads
// "HRESULT 0x...".
func (h HResult) Error() string { return diag.HResultText(uint32(h)) }

// short is the name and the code without the explanation, for a
// diagnosis that explains the code itself.
func (h HResult) short() string {
	name, _ := diag.HResult(uint32(h))
	if strings.HasPrefix(name, "HRESULT 0x") {
		return name
	}
	return fmt.Sprintf("%s (0x%08X)", name, uint32(h))
}

// ReturnValue is a non-zero ReturnValue of Win32_Process.Create or
// Terminate. errors.Is matches it by value.
type ReturnValue uint32

// The documented Win32_Process.Create return values.
const (
	ReturnAccessDenied          ReturnValue = 2
	ReturnInsufficientPrivilege ReturnValue = 3
	ReturnUnknownFailure        ReturnValue = 8
	ReturnPathNotFound          ReturnValue = 9
	ReturnInvalidParameter      ReturnValue = 21
)

// returnNames holds each documented return value's name as
// Win32_Process.Create documents it, and what it means for a technician.
var returnNames = map[ReturnValue]struct{ name, meaning string }{
	ReturnAccessDenied:          {"access denied", "the account may not start processes on the computer"},
	ReturnInsufficientPrivilege: {"insufficient privilege", "the account lacks a privilege that starting the process needs"},
	ReturnUnknownFailure:        {"unknown failure", "Windows could not start the program, often because it is not a valid program for this computer"},
	ReturnPathNotFound:          {"path not found", "the program or its working folder does not exist on the computer"},
	ReturnInvalidParameter:      {"invalid parameter", "Windows rejected the command line or a start-up setting"},
}

// Error returns the value, its documented name and what it means, for
// example "ReturnValue 9 (path not found): the program or its working
// folder does not exist on the computer".
func (r ReturnValue) Error() string {
	if n, ok := returnNames[r]; ok {
		return fmt.Sprintf("ReturnValue %d (%s): %s", uint32(r), n.name, n.meaning)
	}
	return fmt.Sprintf("ReturnValue %d", uint32(r))
}

// short is the value and its documented name without the explanation.
func (r ReturnValue) short() string {
	if n, ok := returnNames[r]; ok {
		return fmt.Sprintf("ReturnValue %d (%s)", uint32(r), n.name)
	}
	return fmt.Sprintf("ReturnValue %d", uint32(r))
}

// RPC fault statuses that mean "not served here".
const (
	ncaOpRngError  = 0x1C010002
	ncaUnkIf       = 0x1C010003
	rpcSUnknownIf  = 0x000006B5
	rpcSProcnumOOR = 0x000006D1
	faultAccess    = 0x00000005
)

// badSignature reports go-msrpc's own signature check failing (at
// PKT_INTEGRITY it verifies responses itself).
func badSignature(err error) bool {
	var ge *gssapi.Error
	return errors.As(err, &ge) && (ge.Status == gssapi.BadSig || ge.Status == gssapi.BadMIC)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// failure builds the *deploy.LaunchError for err at step.
func (l *Launcher) failure(step string, err error) error {
	if err == nil {
		return nil
	}
	var le *deploy.LaunchError
	if errors.As(err, &le) {
		return err
	}
	diag, kind := classify(step, err)
	return &deploy.LaunchError{Launcher: l.Name(), Step: step, Kind: kind, Diagnosis: diag, Err: err}
}

func endpointName(err error) (string, *EndpointError) {
	var ee *EndpointError
	if errors.As(err, &ee) {
		if ee.Dynamic {
			return "dynamic port " + strconv.Itoa(ee.Port) + " on " + ee.Addr, ee
		}
		return "port " + strconv.Itoa(ee.Port) + " on " + ee.Addr, ee
	}
	return "the computer", nil
}

const fixDCOMFirewall = "Allow TCP 135 and the dynamic RPC range (49152-65535) from the console " +
	`(Windows Firewall rules "Windows Management Instrumentation (DCOM-In)" and "(WMI-In)"), or use the SCM launcher.`

// classify maps an error at a step to a launch error kind and a
// diagnosis.
func classify(step string, err error) (diag.Diagnosis, error) {
	where, ee := endpointName(err)
	var hr HResult
	var rv ReturnValue
	switch {
	case errors.Is(err, rpcauth.ErrIntegrity), badSignature(err):
		return diag.Diagnosis{
			Code:    diag.RPCIntegrity,
			Summary: "A sealed response from " + where + " failed its signature check: it was altered on the way, or the peer is not the computer that authenticated us.",
			Fix:     "Do not trust this network path; check for a man-in-the-middle.",
		}, nil
	case errors.Is(err, context.Canceled):
		return diag.Diagnosis{Code: diag.Canceled, Summary: "The launch was canceled."}, nil
	case errors.As(err, &rv):
		return classifyReturn(rv)
	case errors.As(err, &hr):
		return classifyHResult(step, hr)
	}
	if st, ok := rpcauth.FaultStatus(err); ok {
		switch st {
		case ncaOpRngError, ncaUnkIf, rpcSUnknownIf, rpcSProcnumOOR:
			return diag.Diagnosis{
				Code:    diag.WMINotSupported,
				Summary: fmt.Sprintf("The server at %s does not serve DCOM/WMI for %s (RPC status 0x%08X).", where, step, st),
				Fix:     "Another launch method is needed for this computer.",
			}, deploy.ErrLaunchUnsupported
		case faultAccess:
			return accessDenied(where, "The computer refused the RPC call (access denied): the logon failed or the account may not use DCOM remotely."), deploy.ErrAccessDenied
		}
	}
	switch {
	case ee != nil && ee.Dial && isRefused(err):
		if ee.Dynamic {
			return diag.Diagnosis{
				Code:    diag.WMIDynamicPortRefused,
				Summary: fmt.Sprintf("Port 135 answered, but the dynamic port %d that WMI named on %s refused the connection.", ee.Port, ee.Addr),
				Fix:     fixDCOMFirewall,
			}, deploy.ErrUnreachable
		}
		return diag.Diagnosis{
			Code:    diag.WMIRPCRefused,
			Summary: fmt.Sprintf("Port %d on %s refused the connection: the RPC endpoint mapper is not reachable.", ee.Port, ee.Addr),
			Fix:     fixDCOMFirewall,
		}, deploy.ErrUnreachable
	case ee != nil && !ee.Dynamic && isRefused(err):
		return diag.Diagnosis{
			Code:    diag.WMIRPCRefused,
			Summary: fmt.Sprintf("Port %d on %s reset the connection: the RPC endpoint mapper is not reachable.", ee.Port, ee.Addr),
			Fix:     fixDCOMFirewall,
		}, deploy.ErrUnreachable
	case ee != nil && ee.Dial && isTimeout(err):
		if ee.Dynamic {
			return diag.Diagnosis{
				Code:    diag.WMIDynamicPortFiltered,
				Summary: fmt.Sprintf("Port 135 answered, but the dynamic port %d that WMI named on %s did not accept a connection before the deadline: it is filtered.", ee.Port, ee.Addr),
				Fix:     fixDCOMFirewall,
			}, deploy.ErrUnreachable
		}
		return diag.Diagnosis{
			Code:    diag.WMIRPCFiltered,
			Summary: fmt.Sprintf("Port %d on %s did not accept a connection before the deadline: it is filtered, or the computer is off.", ee.Port, ee.Addr),
			Fix:     fixDCOMFirewall,
		}, deploy.ErrUnreachable
	case ee != nil && ee.Dynamic && isTimeout(err):
		return diag.Diagnosis{
			Code: diag.WMIDynamicPortFiltered,
			Summary: fmt.Sprintf("Port 135 answered, but nothing answered on the dynamic port %d that WMI named on %s before the deadline "+
				"(the connection was accepted, then silence): a firewall or a wedged WMI service.", ee.Port, ee.Addr),
			Fix: fixDCOMFirewall,
		}, deploy.ErrTimeout
	case isTimeout(err):
		return diag.Diagnosis{
			Code:    diag.WMITimeout,
			Summary: "No answer from " + where + " during " + step + " before the deadline.",
			Fix:     "The WMI service may be busy or hung; retry, or use the SCM launcher.",
		}, deploy.ErrTimeout
	case ee != nil && isRefused(err):
		return diag.Diagnosis{
			Code:    diag.WMIConnectionReset,
			Summary: "The connection to " + where + " was reset during " + step + ".",
			Fix:     fixDCOMFirewall,
		}, deploy.ErrUnreachable
	}
	return diag.Diagnosis{}, nil
}

const fixUAC = `For a local (non-RID-500) administrator, UAC remote restrictions strip the admin token: use a domain administrator or the built-in Administrator, ` +
	`or set HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\LocalAccountTokenFilterPolicy=1.`

func accessDenied(where, summary string) diag.Diagnosis {
	return diag.Diagnosis{Code: diag.WMIAccessDenied, Summary: summary + " (at " + where + ")", Fix: fixUAC}
}

func classifyHResult(step string, hr HResult) (diag.Diagnosis, error) {
	switch hr {
	case EAccessDenied:
		return diag.Diagnosis{
			Code: diag.WMIDCOMAccessDenied,
			Summary: "DCOM refused to activate WMI for this account (E_ACCESSDENIED): it lacks Remote Launch/Remote Activation " +
				"permission, or the call's authentication level is below packet integrity (KB5004442).",
			Fix: "Grant the account Remote Launch and Remote Activation in dcomcnfg (My Computer > COM Security), or add it to Administrators. " + fixUAC,
		}, deploy.ErrAccessDenied
	case WBEMEAccessDenied:
		return diag.Diagnosis{
			Code:    diag.WMIAccessDenied,
			Summary: "WMI refused the login to root\\cimv2 (WBEM_E_ACCESS_DENIED): the account lacks Remote Enable on the namespace or is not an administrator there.",
			Fix:     "Grant Enable Account and Remote Enable on root\\cimv2 (wmimgmt.msc > WMI Control > Security), and check DCOM permissions. " + fixUAC,
		}, deploy.ErrAccessDenied
	case RegdbEClassNotReg, ENoInterface, WBEMEInvalidNS, WBEMEInvalidClass, WBEMEInvalidMethod:
		return diag.Diagnosis{
			Code:    diag.WMINotSupported,
			Summary: "The computer does not provide what " + step + " needs (" + hr.short() + ").",
			Fix:     "Another launch method is needed for this computer.",
		}, deploy.ErrLaunchUnsupported
	}
	return diag.Diagnosis{Code: diag.WMIError, Summary: "WMI failed during " + step + " with " + hr.Error() + "."}, nil
}

func classifyReturn(rv ReturnValue) (diag.Diagnosis, error) {
	switch rv {
	case ReturnAccessDenied, ReturnInsufficientPrivilege:
		return diag.Diagnosis{
			Code:    diag.WMICreateAccessDenied,
			Summary: "Win32_Process.Create refused to start the applet (" + rv.short() + ").",
			Fix:     fixUAC,
		}, deploy.ErrAccessDenied
	case ReturnPathNotFound:
		return diag.Diagnosis{
			Code:    diag.WMICreatePathNotFound,
			Summary: "Win32_Process.Create did not find the applet or its directory (" + rv.short() + ").",
			Fix:     "Copy the applet to the target first (deploy.Copy) and launch the path it was copied to.",
		}, nil
	case ReturnInvalidParameter:
		return diag.Diagnosis{
			Code:    diag.WMICreateInvalidParameter,
			Summary: "Win32_Process.Create rejected the command line (" + rv.short() + ").",
		}, deploy.ErrBadSpec
	case ReturnUnknownFailure:
		return diag.Diagnosis{
			Code:    diag.WMICreateFailed,
			Summary: "Win32_Process.Create failed (" + rv.short() + "): the applet may not be a valid executable for this computer.",
		}, nil
	}
	return diag.Diagnosis{Code: diag.WMICreateFailed, Summary: "Win32_Process.Create failed (" + rv.short() + ")."}, nil
}
