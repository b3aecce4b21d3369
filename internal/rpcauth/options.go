package rpcauth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/ssp/credential"

	"github.com/lanconnect/lanconnect/adauth"
)

// Credentials is the account a connection authenticates as.
// adauth.Credentials implements it. rpcauth imports adauth only for the
// public names of what it exposes through the launchers (adauth.RPCLevel,
// adauth.ErrIntegrity); adauth must never import rpcauth.
type Credentials interface {
	// Account returns "DOMAIN\user", ".\user" for an account local to
	// the target, or "user".
	Account() string
	// Password returns the password and whether one is set.
	Password() (string, bool)
	// NTHash returns the 16-byte NT hash, or nil. It wins over Password.
	NTHash() []byte
}

// ErrNoCredentials is matched (errors.Is) by the error of Options when the
// credentials carry no user or no secret.
var ErrNoCredentials = errors.New("rpcauth: credentials have no user or secret")

// Level is the DCE/RPC authentication level of a connection: the public
// adauth.RPCLevel, so that the launchers' Level fields take it as it is.
type Level = adauth.RPCLevel

// The levels, as adauth names them.
const (
	// Privacy seals every PDU (PKT_PRIVACY) and, through VerifyingNTLM,
	// verifies the signature of every response. It is the zero value and
	// the default.
	Privacy = adauth.RPCPrivacy
	// Integrity signs every PDU (PKT_INTEGRITY); go-msrpc verifies
	// response signatures itself at this level.
	Integrity = adauth.RPCIntegrity
	// None binds without RPC authentication. Use it only on a transport
	// that is itself protected, such as a signed SMB session.
	None = adauth.RPCNone
)

// Options returns the go-msrpc options that give one client (one
// NewXxxClient call, one bind) its own NTLM security context with creds
// at level. Pass them to the generated client constructor, for example
// svcctl.NewSvcctlClient(ctx, conn, opts...).
//
// Each call makes new options; they never touch go-msrpc's global
// credential or mechanism stores. The returned options hold the secret
// in memory for the bind; they do not print it.
func Options(creds Credentials, level Level) ([]dcerpc.Option, error) {
	return OptionsFor(creds, level, "")
}

// OptionsFor is Options for a connection to the computer named expect: its
// NTLM CHALLENGE must name that computer (see VerifyingNTLM.Expect), or the
// bind fails before any AUTHENTICATE is sent. An empty expect or an IP
// literal checks nothing. At level None there is no NTLM and no check.
func OptionsFor(creds Credentials, level Level, expect string) ([]dcerpc.Option, error) {
	if level == None {
		return []dcerpc.Option{dcerpc.WithInsecure()}, nil
	}
	mech, c, err := ntlmSecurity(creds, expect)
	if err != nil {
		return nil, err
	}
	opts := []dcerpc.Option{
		dcerpc.WithMechanism(mech),
		dcerpc.WithCredentials(c),
	}
	switch level {
	case Privacy:
		opts = append(opts, dcerpc.WithSeal())
	case Integrity:
		opts = append(opts, dcerpc.WithSign())
	default:
		return nil, fmt.Errorf("rpcauth: unknown level %d", int(level))
	}
	return opts, nil
}

// ntlmSecurity returns the mechanism and the go-msrpc credential of one
// security context for creds, checking that the server is expect. A local
// account (".\user") gets an empty domain in the credential and
// VerifyingNTLM.Local: its AUTHENTICATE carries the computer's NetBIOS name
// from the CHALLENGE as its domain, as on SMB (smbconn.Auth.Local).
func ntlmSecurity(creds Credentials, expect string) (VerifyingNTLM, credential.Credential, error) {
	if creds == nil {
		return VerifyingNTLM{}, nil, ErrNoCredentials
	}
	domain, user, ok := strings.Cut(creds.Account(), `\`)
	if !ok {
		domain, user = "", domain
	}
	local := domain == "."
	if local {
		domain = ""
	}
	pw, hasPW := creds.Password()
	h := creds.NTHash()
	if user == "" || (!hasPW && len(h) == 0) {
		return VerifyingNTLM{}, nil, ErrNoCredentials
	}
	mech := VerifyingNTLM{Expect: expect, Local: local}
	opt := credential.Domain(domain)
	if len(h) > 0 {
		return mech, credential.NewFromNTHashBytes(user, h, opt), nil
	}
	return mech, credential.NewFromPassword(user, pw, opt), nil
}
