package rpcauth

import (
	"errors"

	dcerrors "github.com/oiweiwei/go-msrpc/dcerpc/errors"
)

// FaultStatus extracts the DCE/RPC fault or reject status from an error
// returned by a go-msrpc call (for example 0x1C010002, nca_op_rng_error,
// or 5, access denied), and reports whether there was one. It does not
// interpret the status, and Win32 errors returned in a call's result are
// not faults.
func FaultStatus(err error) (uint32, bool) {
	var re *dcerrors.RPCError
	if errors.As(err, &re) {
		return re.Code, true
	}
	var ge *dcerrors.Error
	if errors.As(err, &ge) {
		switch v := ge.Value.(type) {
		case uint32:
			return v, true
		case int32:
			return uint32(v), true
		}
	}
	return 0, false
}
