package krbtest

import (
	"context"

	"github.com/oiweiwei/go-msrpc/dcerpc"

	"github.com/lanconnect/lanconnect/internal/krb"
)

// RPC returns what a Kerberos grant lends its launchers
// (internal/grantsess.KerberosRPC): go-msrpc options for one bind as cred
// to the computer fqdn's service class (host, RPCSS), with the tickets of
// cache, as adauth builds them for a grant. The tests of remotereg and
// wmi put it in their targets.
func RPC(cache *krb.Cache, cred krb.Credential, fqdn string) func(ctx context.Context, class string, seal bool) ([]dcerpc.Option, error) {
	return func(ctx context.Context, class string, seal bool) ([]dcerpc.Option, error) {
		spn, err := krb.SPN(class, fqdn)
		if err != nil {
			return nil, err
		}
		return cache.RPCOptions(ctx, cred, spn, seal)
	}
}
