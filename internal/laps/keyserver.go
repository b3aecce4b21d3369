package laps

import (
	"context"
	"time"

	"github.com/oiweiwei/go-msrpc/msrpc/gkdi/isdkey/v1"
)

// hresult returns an HRESULT as the int32 that GetKey's result carries.
func hresult(v uint32) int32 { return int32(v) }

// hresultInvalidArg is E_INVALIDARG.
const hresultInvalidArg = 0x80070057

// KeyService is an isdkey.ISDKeyServer that serves MS-GKDI GetKey from a
// synthetic KDS root key, as a DC's KDS does: a caller whom Authorize
// admits for the target security descriptor gets the private seed keys
// of the requested (or current) group key; any other caller, and a call
// that Caller does not report as authenticated at packet privacy, gets
// E_ACCESSDENIED. It is for tests and the lab: serve it with go-msrpc's
// isdkey.NewISDKeyServerHandle, for example on winemu.
//
// It never evaluates the security descriptor itself (Authorize does),
// serves one root key, and never returns the public-key envelopes that
// Windows gives callers who may only encrypt.
type KeyService struct {
	isdkey.UnimplementedISDKeyServer
	// RootKey is the synthetic root key.
	RootKey *RootKey
	// Caller reports the authenticated account of the call in ctx and
	// whether the call is sealed (packet privacy). Nil admits nobody.
	Caller func(ctx context.Context) (user string, privacy bool)
	// Authorize reports whether user may decrypt for targetSD. Nil admits
	// nobody.
	Authorize func(user string, targetSD []byte) bool
	// Now is the clock for requests of the current key; nil means
	// time.Now.
	Now func() time.Time
}

// GetKey implements isdkey.ISDKeyServer.
func (k *KeyService) GetKey(ctx context.Context, req *isdkey.GetKeyRequest) (*isdkey.GetKeyResponse, error) {
	deny := &isdkey.GetKeyResponse{Return: hresult(hresultAccessDenied)}
	invalid := &isdkey.GetKeyResponse{Return: hresult(hresultInvalidArg)}
	if k.Caller == nil || k.Authorize == nil {
		return deny, nil
	}
	user, privacy := k.Caller(ctx)
	if user == "" || !privacy {
		return deny, nil
	}
	if k.RootKey == nil || int(req.TargetSDLength) != len(req.TargetSD) {
		return invalid, nil
	}
	if req.RootKeyID != nil && GUIDFromDtyp(req.RootKeyID) != k.RootKey.ID {
		return invalid, nil
	}
	if !k.Authorize(user, req.TargetSD) {
		return deny, nil
	}
	l0, l1, l2 := req.L0KeyID, req.L1KeyID, req.L2KeyID
	if l0 == -1 {
		now := time.Now
		if k.Now != nil {
			now = k.Now
		}
		l0, l1, l2 = KeyIndexes(now())
	}
	env, err := k.RootKey.Envelope(req.TargetSD, l0, l1, l2)
	if err != nil {
		return invalid, nil
	}
	out := env.Marshal()
	return &isdkey.GetKeyResponse{OutLength: uint32(len(out)), Out: out}, nil
}
