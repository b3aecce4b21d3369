package rpcauth

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	dcerrors "github.com/oiweiwei/go-msrpc/dcerpc/errors"

	"github.com/lanconnect/lanconnect/diag"
)

// Cause returns the text of err's root cause as a technician reads it.
// go-msrpc wraps a failure in its own chain ("bind: could not bind the
// selected transport: ncacn_ip_tcp: custom dialer: dial: ..."), which
// names no fact the technician can act on; Cause keeps the fact:
//
//   - a failed TCP dial reads as the dial itself, without the "connect:"
//     syscall step: "dial tcp 10.0.0.5:135: connection refused";
//   - a DCE/RPC fault or reject reads as its status, named and explained
//     when it is a Win32 error: "RPC fault nca_op_rng_error (0x1C010002)",
//     "ERROR_ACCESS_DENIED (5): ...";
//   - anything else reads as err.Error().
//
// It does not change err: errors.Is and errors.As still see the whole
// chain, and callers keep err itself for the raw text (connect -v).
func Cause(err error) string {
	if err == nil {
		return ""
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return opText(oe)
	}
	var re *dcerrors.RPCError
	if errors.As(err, &re) {
		if _, meaning := diag.Win32(re.Code); meaning != "" {
			return "RPC fault " + diag.Win32Text(re.Code)
		}
		return fmt.Sprintf("RPC fault %s (0x%08X)", re.Name, re.Code)
	}
	if st, ok := FaultStatus(err); ok {
		if _, meaning := diag.Win32(st); meaning != "" {
			return "RPC fault " + diag.Win32Text(st)
		}
		return fmt.Sprintf("RPC fault 0x%08X", st)
	}
	return err.Error()
}

// opText is a net.OpError's text without the syscall's name: "dial tcp
// 10.0.0.5:135: connection refused".
func opText(oe *net.OpError) string {
	var b strings.Builder
	b.WriteString(oe.Op)
	if oe.Net != "" {
		b.WriteString(" " + oe.Net)
	}
	if oe.Addr != nil {
		b.WriteString(" " + oe.Addr.String())
	}
	inner := oe.Err
	var se *os.SyscallError
	if errors.As(inner, &se) && se.Err != nil {
		inner = se.Err
	}
	b.WriteString(": " + inner.Error())
	return b.String()
}
