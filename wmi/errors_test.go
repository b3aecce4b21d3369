package wmi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/oiweiwei/go-msrpc/ssp/gssapi"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
)

func TestClassify(t *testing.T) {
	ep := func(dynamic, dial bool, err error) error {
		port := 135
		if dynamic {
			port = 49731
		}
		return &EndpointError{Step: "x", Host: "10.0.0.5", Port: port, Dynamic: dynamic, Dial: dial, Err: err}
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
	if s := WBEMEAccessDenied.Error(); s != "WBEM_E_ACCESS_DENIED (0x80041003)" {
		t.Errorf("%q", s)
	}
	if s := HResult(0x80001234).Error(); s != "HRESULT 0x80001234" {
		t.Errorf("%q", s)
	}
	if s := ReturnPathNotFound.Error(); s != "ReturnValue 9 (path not found)" {
		t.Errorf("%q", s)
	}
	err := fmt.Errorf("wrapped: %w", &EndpointError{Step: StepConnectDynamic, Host: "h", Port: 50000, Dynamic: true, Err: ReturnPathNotFound})
	if !errors.Is(err, ReturnPathNotFound) || !strings.Contains(err.Error(), "dynamic port 50000 on h") {
		t.Errorf("%v", err)
	}
}
