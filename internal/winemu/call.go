package winemu

import (
	"context"
	"net"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/midl/uuid"
)

// Call describes the RPC call being served. Handlers read it with
// CallFromContext to learn who is calling and how.
type Call struct {
	// Interface is the name of the interface the call is for.
	Interface string
	// OpNum is the operation number.
	OpNum int
	// Object is the request's object UUID (the IPID for DCOM), or nil.
	Object *uuid.UUID
	// User is the authenticated account name; empty for anonymous calls.
	User string
	// Admin reports whether User is an administrator.
	Admin bool
	// AuthLevel is the security level of the call (AuthLevelNone if
	// unauthenticated).
	AuthLevel dcerpc.AuthLevel
	// AuthType is the security provider (AuthTypeWinNT for NTLM,
	// AuthTypeGSSNegotiate for SPNEGO; AuthTypeNone if unauthenticated).
	AuthType dcerpc.AuthType
	// ConnID identifies the connection; Interface.Rundown receives it.
	ConnID uint64
	// LocalAddr and RemoteAddr are the connection's addresses (nil for
	// in-process calls).
	LocalAddr, RemoteAddr net.Addr
}

type callKey struct{}

// CallFromContext returns the call that ctx belongs to.
func CallFromContext(ctx context.Context) (*Call, bool) {
	c, ok := ctx.Value(callKey{}).(*Call)
	return c, ok
}

// WithCaller returns a context for calling the SCM (or another handler)
// in-process as the given user. It does not authenticate anything: it is
// for unit tests that bypass the wire.
func WithCaller(ctx context.Context, user string, admin bool) context.Context {
	return context.WithValue(ctx, callKey{}, &Call{User: user, Admin: admin, AuthLevel: dcerpc.AuthLevelPktPrivacy})
}
