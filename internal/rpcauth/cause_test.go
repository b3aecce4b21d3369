package rpcauth

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	dcerrors "github.com/oiweiwei/go-msrpc/dcerpc/errors"
)

func TestCause(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 135},
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("plain"), "plain"},
		{fmt.Errorf("bind: could not bind the selected transport: ncacn_ip_tcp: custom dialer: dial: %w", refused),
			"dial tcp 10.0.0.5:135: connection refused"},
		{fmt.Errorf("dcerpc: invoke: x: %w", &dcerrors.RPCError{Code: 0x1C010002, Name: "nca_op_rng_error", Details: "long text"}),
			"RPC fault nca_op_rng_error (0x1C010002)"},
		{fmt.Errorf("dcerpc: invoke: x: %w", &dcerrors.RPCError{Code: 5, Name: "ERROR_ACCESS_DENIED"}),
			"RPC fault ERROR_ACCESS_DENIED (5): the account may not do this: it is not an administrator there, or UAC remote restrictions filter its token"},
	} {
		if got := Cause(c.err); got != c.want {
			t.Errorf("Cause(%v)\n got %q\nwant %q", c.err, got, c.want)
		}
	}
}
