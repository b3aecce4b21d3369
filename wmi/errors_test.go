package wmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/oiweiwei/go-msrpc/ssp/gssapi"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
	"github.com/lanconnect/lanconnect/internal/testutil"
	lcsession "github.com/lanconnect/lanconnect/session"
)

func TestClassify(t *testing.T) {
	ep := func(dynamic, dial bool, err error) error {
		port := 135
		if dynamic {
			port = 49731
		}
		return &EndpointError{Step: "x", Addr: "10.0.0.5", Port: port, Dynamic: dynamic, Dial: dial, Err: err}
	}
	for _, c := range []struct {
		err  error
		kind error
		code diag.Code
		port string // must appear in the summary
	}{
		{ep(false, true, syscall.ECONNREFUSED), deploy.ErrUnreachable, "wmi-rpc-refused", "135"},
		{ep(false, true, os.ErrDeadlineExceeded), deploy.ErrUnreachable, "wmi-rpc-filtered", "135"},
		{ep(true, true, syscall.ECONNREFUSED), deploy.ErrUnreachable, "wmi-dynamic-port-refused", "49731"},
		{ep(true, true, fmt.Errorf("%w: %w", ErrNoAnswer, context.DeadlineExceeded)), deploy.ErrUnreachable, "wmi-dynamic-port-filtered", "49731"},
		{ep(true, false, fmt.Errorf("%w: %w", ErrNoAnswer, context.DeadlineExceeded)), deploy.ErrTimeout, "wmi-dynamic-port-filtered", "49731"},
		{ep(false, false, context.DeadlineExceeded), deploy.ErrTimeout, "wmi-timeout", "135"},
		{ep(true, false, syscall.ECONNRESET), deploy.ErrUnreachable, "wmi-connection-reset", "49731"},
		{ep(false, false, EAccessDenied), deploy.ErrAccessDenied, "wmi-dcom-access-denied", ""},
		{ep(true, false, WBEMEAccessDenied), deploy.ErrAccessDenied, "wmi-access-denied", ""},
		{ep(false, false, RegdbEClassNotReg), deploy.ErrLaunchUnsupported, "wmi-not-supported", ""},
		{ep(true, false, rpcauth.ErrIntegrity), nil, "rpc-integrity", "49731"},
		{ep(true, false, gssapi.ErrBadSig), nil, "rpc-integrity", "49731"},
		{ep(true, false, context.Canceled), nil, "canceled", ""},
		{ReturnAccessDenied, deploy.ErrAccessDenied, "wmi-create-access-denied", ""},
		{ReturnInsufficientPrivilege, deploy.ErrAccessDenied, "wmi-create-access-denied", ""},
		{ReturnUnknownFailure, nil, "wmi-create-failed", ""},
		{ReturnPathNotFound, nil, "wmi-create-path-not-found", ""},
		{ReturnInvalidParameter, deploy.ErrBadSpec, "wmi-create-invalid-parameter", ""},
		{ReturnValue(42), nil, "wmi-create-failed", ""},
	} {
		d, kind := classify("step", c.err)
		if kind != c.kind || d.Code != c.code {
			t.Errorf("%v: kind %v code %q, want %v %q", c.err, kind, d.Code, c.kind, c.code)
		}
		if c.port != "" && !strings.Contains(d.Summary, c.port) {
			t.Errorf("%v: summary %q does not name port %s", c.err, d.Summary, c.port)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	if s := WBEMEAccessDenied.Error(); s != "WBEM_E_ACCESS_DENIED (0x80041003): the account lacks the WMI namespace permission it needs (Remote Enable)" {
		t.Errorf("%q", s)
	}
	if s := HResult(0x80001234).Error(); s != "HRESULT 0x80001234" {
		t.Errorf("%q", s)
	}
	if s := ReturnPathNotFound.Error(); s != "ReturnValue 9 (path not found): the program or its working folder does not exist on the computer" {
		t.Errorf("%q", s)
	}
	err := fmt.Errorf("wrapped: %w", &EndpointError{Step: StepConnectDynamic, Addr: "h", Port: 50000, Dynamic: true, Err: ReturnPathNotFound})
	if !errors.Is(err, ReturnPathNotFound) || !strings.Contains(err.Error(), "dynamic port 50000 on h") {
		t.Errorf("%v", err)
	}
}

// TestChainSaysEachContextOnce builds the chain of issue 21 §12 (port 135
// closed: go-msrpc's bind wraps our dialer's net.OpError) as the WMI
// launcher and the session wrap it, and checks that each layer adds its
// context once, and that %+v still prints the raw chain.
func TestChainSaysEachContextOnce(t *testing.T) {
	oe := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 135},
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	msrpc := fmt.Errorf("bind: could not bind the selected transport: ncacn_ip_tcp: custom dialer: %w", &dialError{err: oe})
	ee := &EndpointError{Step: StepConnect, Addr: "10.0.0.5", Port: 135, Dial: true, Err: msrpc}
	le := (&Launcher{}).failure(StepConnect, ee)
	se := &lcsession.Error{Name: "10.0.0.5", Step: lcsession.StepLaunch, Kind: lcsession.ErrLaunchFailed, Err: le}

	const root = "dial tcp 10.0.0.5:135: connection refused"
	const launch = "wmi: connect: launch endpoint unreachable: " + root +
		" (Port 135 on 10.0.0.5 refused the connection: the RPC endpoint mapper is not reachable.)"
	for _, c := range []struct {
		err  error
		want string
	}{
		{ee, root},
		{le, launch},
		{se, "session 10.0.0.5: launch: every launcher failed: " + launch},
	} {
		got := c.err.Error()
		if got != c.want {
			t.Errorf("Error()\n got %q\nwant %q", got, c.want)
		}
		for _, p := range []string{"wmi: ", "connect: ", "session: ", "deploy: "} {
			if n := strings.Count(got, p); n > 1 {
				t.Errorf("%q appears %d times in %q", p, n, got)
			}
		}
		if fmt.Sprint(c.err) != got {
			t.Errorf("%%v differs from Error: %q", fmt.Sprint(c.err))
		}
		raw := fmt.Sprintf("%+v", c.err)
		if !strings.Contains(raw, "custom dialer: dial: dial tcp 10.0.0.5:135: connect: connection refused") {
			t.Errorf("%%+v lost the raw chain: %q", raw)
		}
	}
	if !errors.Is(se, syscall.ECONNREFUSED) || !errors.Is(se, deploy.ErrUnreachable) {
		t.Error("the summarised chain no longer matches its causes")
	}
}

// TestEveryStatusExplained parses this package's HResult and ReturnValue
// constants and checks that each has a name and an explanation.
func TestEveryStatusExplained(t *testing.T) {
	count := map[string]int{}
	for _, c := range testutil.Consts(t, "HResult", "errors.go") {
		count["HResult"]++
		if sym, meaning := diag.HResult(uint32(c.Num)); meaning == "" || strings.HasPrefix(sym, "HRESULT") {
			t.Errorf("%s (0x%08X): diag.HResult gives %q, %q", c.Name, c.Num, sym, meaning)
		}
	}
	for _, c := range testutil.Consts(t, "ReturnValue", "errors.go") {
		count["ReturnValue"]++
		if n, ok := returnNames[ReturnValue(c.Num)]; !ok || n.name == "" || n.meaning == "" {
			t.Errorf("%s (%d) has no name or meaning", c.Name, c.Num)
		}
	}
	if count["HResult"] < 10 || count["ReturnValue"] < 5 {
		t.Fatalf("found only %v constants", count)
	}
}
