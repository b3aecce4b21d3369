package remotereg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	dcerrors "github.com/oiweiwei/go-msrpc/dcerpc/errors"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/rpcauth"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testutil"
)

func TestFailureClassification(t *testing.T) {
	l := &Launcher{}
	cases := []struct {
		name string
		err  error
		kind error
		code diag.Code
	}{
		{"access denied", fmt.Errorf("create: %w", ErrorAccessDenied), deploy.ErrAccessDenied, "access-denied"},
		{"service exists", ErrorServiceExists, deploy.ErrServiceExists, "service-exists"},
		{"marked for delete", ErrorServiceMarkedForDelete, deploy.ErrServiceExists, "service-exists"},
		{"1053", fmt.Errorf("start: %w", ErrorServiceRequestTimeout), deploy.ErrNotServiceAware, "applet-not-service-aware"},
		{"193", fmt.Errorf("start: %w", ErrorBadExeFormat), deploy.ErrNotExecutable, "applet-wrong-architecture"},
		{"op range fault", fmt.Errorf("invoke: %w", dcerrors.OperationRangeError), deploy.ErrLaunchUnsupported, "scm-not-supported"},
		{"not supported", ErrorNotSupported, deploy.ErrLaunchUnsupported, "scm-not-supported"},
		{"fault 5", &dcerrors.Error{Value: uint32(5)}, deploy.ErrAccessDenied, "access-denied"},
		{"pipe missing", &smbconn.Error{Op: "open pipe", Err: smbconn.StatusObjectNameNotFound}, deploy.ErrUnreachable, "pipe-not-available"},
		{"pipe busy", &smbconn.Error{Op: "open pipe", Err: smbconn.StatusPipeNotAvailable}, deploy.ErrUnreachable, "pipe-not-available"},
		{"pipe denied", &smbconn.Error{Op: "open pipe", Err: smbconn.StatusAccessDenied}, deploy.ErrAccessDenied, "access-denied"},
		{"refused", &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}, deploy.ErrUnreachable, "endpoint-unreachable"},
		{"deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), deploy.ErrTimeout, "endpoint-timeout"},
		{"integrity", fmt.Errorf("unwrap: %w", rpcauth.ErrIntegrity), nil, "rpc-integrity"},
		{"cancelled", context.Canceled, nil, "canceled"},
		{"other", errors.New("boom"), nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := l.failure("create service", "host:1234", tc.err)
			var le *deploy.LaunchError
			if !errors.As(err, &le) {
				t.Fatalf("%T", err)
			}
			if le.Kind != tc.kind || le.Diagnosis.Code != tc.code {
				t.Fatalf("kind %v code %q, want %v %q", le.Kind, le.Diagnosis.Code, tc.kind, tc.code)
			}
			if !errors.Is(err, tc.err) {
				t.Fatal("cause lost")
			}
			if le.Launcher != "scm" || le.Step != "create service" {
				t.Fatalf("%+v", le)
			}
			if tc.code != "" && tc.code != "canceled" && !strings.Contains(le.Diagnosis.Summary, "host:1234") && tc.kind != deploy.ErrServiceExists && tc.kind != deploy.ErrNotServiceAware && tc.kind != deploy.ErrNotExecutable {
				t.Errorf("diagnosis does not name the endpoint: %q", le.Diagnosis.Summary)
			}
		})
	}
	// The technician reads what to do: 1053 says the applet is not a
	// service and names both ways out; 193 names the architecture.
	for _, c := range []struct {
		err  error
		want []string
	}{
		{ErrorServiceRequestTimeout, []string{"not a service", "1053", "service-aware applet", "WMI"}},
		{ErrorBadExeFormat, []string{"not a Windows program for this computer's architecture", "193", "ERROR_BAD_EXE_FORMAT"}},
	} {
		var le *deploy.LaunchError
		if !errors.As(l.failure("start service", "h:1", c.err), &le) {
			t.Fatalf("%v: not a LaunchError", c.err)
		}
		text := le.Diagnosis.Summary + " " + le.Diagnosis.Fix
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%v: diagnosis %q lacks %q", c.err, text, w)
			}
		}
	}
	// A start that outlives the deadline hints at a non-service-aware applet.
	if err := l.failure("start service", "h:1", context.DeadlineExceeded); !errors.Is(err, deploy.ErrTimeout) ||
		!strings.Contains(err.Error(), "service-aware") {
		t.Fatalf("start timeout: %v", err)
	}
	// An existing LaunchError passes through unchanged.
	inner := &deploy.LaunchError{Launcher: "scm", Step: "x", Kind: deploy.ErrTimeout}
	if got := l.failure("y", "z", inner); got != error(inner) {
		t.Fatalf("re-wrapped: %v", got)
	}
	if l.failure("y", "z", nil) != nil {
		t.Fatal("nil error wrapped")
	}
}

func TestWin32ErrorString(t *testing.T) {
	if got := ErrorServiceRequestTimeout.Error(); got != "ERROR_SERVICE_REQUEST_TIMEOUT (1053): the program started but never reported to the Service Control Manager that it runs, so Windows stopped it: it is not written as a service" {
		t.Errorf("got %q", got)
	}
	if got := Win32Error(8).Error(); got != "ERROR_NOT_ENOUGH_MEMORY (8): the computer ran out of memory (or of a server resource such as RPC buffers) for this call" {
		t.Errorf("got %q", got)
	}
	if got := Win32Error(4242).Error(); got != "win32 error 4242" {
		t.Errorf("got %q", got)
	}
	if !errors.Is(fmt.Errorf("x: %w", Win32Error(5)), ErrorAccessDenied) {
		t.Error("errors.Is by value")
	}
}

// TestEveryWin32ErrorExplained parses this package's Win32Error constants
// and checks that diag names and explains each, and so does every code
// the issue saw reach a technician.
func TestEveryWin32ErrorExplained(t *testing.T) {
	consts := testutil.Consts(t, "Win32Error", "errors.go")
	n := len(consts)
	for _, c := range consts {
		if sym, meaning := diag.Win32(uint32(c.Num)); meaning == "" || !strings.HasPrefix(sym, "ERROR_") {
			t.Errorf("%s (%d): diag.Win32 gives %q, %q", c.Name, c.Num, sym, meaning)
		}
	}
	if n < 15 {
		t.Fatalf("found only %d Win32Error constants", n)
	}
	for _, code := range []uint32{5, 8, 53, 193, 1053, 1060} {
		if strings.HasPrefix(Win32Error(code).Error(), "win32 error") {
			t.Errorf("%d is not named", code)
		}
	}
}

func TestServiceName(t *testing.T) {
	l := &Launcher{Rand: strings.NewReader("\xde\xad\xbe\xef\x00\x01\x02\x03")}
	n, err := l.serviceName(deploy.LaunchSpec{})
	if err != nil || n != DefaultServicePrefix+"deadbeef" {
		t.Fatalf("%q %v", n, err)
	}
	l.ServicePrefix = "acme-"
	if n, _ := l.serviceName(deploy.LaunchSpec{}); n != "acme-00010203" {
		t.Fatalf("%q", n)
	}
	if n, _ := (&Launcher{}).serviceName(deploy.LaunchSpec{ServicePrefix: "spec-"}); !strings.HasPrefix(n, "spec-") || len(n) != len("spec-")+8 {
		t.Fatalf("%q", n)
	}
	if _, err := (&Launcher{Rand: strings.NewReader("")}).serviceName(deploy.LaunchSpec{}); err == nil {
		t.Fatal("no randomness accepted")
	}
}

func TestLaunchRejectsBadSpec(t *testing.T) {
	_, err := (&Launcher{}).launchTarget(context.Background(), target{Addr: "127.0.0.1"}, deploy.LaunchSpec{Path: "relative.exe"}, nil)
	if !errors.Is(err, deploy.ErrBadSpec) {
		t.Fatalf("err = %v", err)
	}
}

// A failed start whose service could not be removed afterwards keeps its
// kind and cause, also matches deploy.ErrAttemptLeftBehind, and says in
// its diagnosis that no other method was tried.
func TestLeftBehind(t *testing.T) {
	l := &Launcher{}
	start := l.failure("start service", "ncacn_ip_tcp:10.1.2.3[49152]", fmt.Errorf("start: %w", ErrorServiceRequestTimeout))
	removal := fmt.Errorf("delete: %w", ErrorAccessDenied)
	err := leftBehind(start, "service lanconnect-1a2b", removal)
	var le *deploy.LaunchError
	if !errors.As(err, &le) || !errors.Is(err, deploy.ErrNotServiceAware) || !errors.Is(err, deploy.ErrAttemptLeftBehind) ||
		!errors.Is(err, ErrorServiceRequestTimeout) || !errors.Is(err, ErrorAccessDenied) {
		t.Fatalf("err %v does not match its kind, its cause, the removal's cause and ErrAttemptLeftBehind", err)
	}
	if le.Diagnosis.Code != "applet-not-service-aware" || !strings.Contains(le.Diagnosis.Summary, "service lanconnect-1a2b") ||
		!strings.Contains(le.Diagnosis.Summary, "no other launch method was tried") {
		t.Fatalf("diagnosis %+v", le.Diagnosis)
	}
	// The original error is not changed.
	if errors.Is(start, deploy.ErrAttemptLeftBehind) {
		t.Fatal("leftBehind changed the error it wraps")
	}
}
