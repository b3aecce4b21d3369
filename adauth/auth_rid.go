package adauth

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf16"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	lsat "github.com/oiweiwei/go-msrpc/msrpc/lsat/lsarpc/v0"
)

// ridBuiltinAdministrator is the relative ID of a computer's built-in
// Administrator account, which UAC remote restrictions spare unless
// FilterAdministratorToken is set.
const ridBuiltinAdministrator = 500

// policyLookupNames is POLICY_LOOKUP_NAMES (MS-LSAD 2.2.1.1.2).
const policyLookupNames = 0x00000800

// errNoRID means the account name did not resolve to a RID.
var errNoRID = errors.New("adauth: account not resolved")

// lookupRID asks the computer's LSA, over \pipe\lsarpc on the grant's
// session, for the relative ID of the grant's (local) account. It is best
// effort: callers use the answer to sharpen a diagnosis, never to decide
// whether the account is an administrator.
func lookupRID(ctx context.Context, g *Grant) (uint32, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var rid uint32
	err := withLSA(ctx, g, func(cli lsat.LsarpcClient, pol *lsat.Handle) error {
		var err error
		rid, err = lookupRIDWith(ctx, g, cli, pol)
		return err
	})
	return rid, err
}

// withLSA binds \pipe\lsarpc on the grant's session, opens the policy for
// lookups, runs f, and closes both.
func withLSA(ctx context.Context, g *Grant, f func(cli lsat.LsarpcClient, pol *lsat.Handle) error) error {
	cc, err := dcerpc.Dial(ctx, pipePlaceholder, dcerpc.WithDialer(g.PipeDialer("lsarpc")))
	if err != nil {
		return err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer ccancel()
		_ = cc.Close(cctx)
	}()
	cli, err := lsat.NewLsarpcClient(ctx, cc, dcerpc.WithInsecure())
	if err != nil {
		return err
	}
	pol, err := cli.OpenPolicy2(ctx, &lsat.OpenPolicy2Request{ObjectAttributes: &lsat.ObjectAttributes{}, DesiredAccess: policyLookupNames})
	if err != nil {
		return err
	}
	defer func() { _, _ = cli.Close(context.WithoutCancel(ctx), &lsat.CloseRequest{Object: pol.Policy}) }()
	return f(cli, pol.Policy)
}

// lookupRIDWith is lookupRID on an open policy.
func lookupRIDWith(ctx context.Context, g *Grant, cli lsat.LsarpcClient, pol *lsat.Handle) (uint32, error) {
	name := g.Credentials.User
	if dom := g.Facts.Server.NetBIOSName; dom != "" {
		name = dom + `\` + name // the computer's own account, not a domain one
	}
	n := uint16(2 * len(utf16.Encode([]rune(name))))
	resp, err := cli.LookupNames2(ctx, &lsat.LookupNames2Request{
		Policy:         pol,
		Count:          1,
		Names:          []*dtyp.UnicodeString{{Length: n, MaximumLength: n, Buffer: name}},
		TranslatedSIDs: &lsat.TranslatedSIDsEx{},
		LookupLevel:    lsat.LookupLevelWorkstation,
		ClientRevision: 2,
	})
	if err != nil {
		return 0, err
	}
	if resp.TranslatedSIDs == nil || len(resp.TranslatedSIDs.SIDs) != 1 || resp.TranslatedSIDs.SIDs[0] == nil || resp.MappedCount != 1 {
		return 0, fmt.Errorf("%w: %s", errNoRID, name)
	}
	return resp.TranslatedSIDs.SIDs[0].RelativeID, nil
}
