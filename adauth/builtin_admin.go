package adauth

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf16"

	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	lsat "github.com/oiweiwei/go-msrpc/msrpc/lsat/lsarpc/v0"

	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// ErrNoBuiltinAdministrator: the computer's LSA did not name its built-in
// Administrator.
var ErrNoBuiltinAdministrator = errors.New("adauth: the built-in Administrator could not be looked up")

// BuiltinAdministrator returns the name of the built-in Administrator
// (RID 500 of its own account domain) of the computer at addr, as its
// LSA answers over \pipe\lsarpc: LsarLookupNames2 of the computer's
// NetBIOS name gives the domain SID, LsarLookupSids2 of that SID plus 500
// the name (it may have been renamed). It logs on as creds, or
// anonymously when creds is zero (Windows refuses anonymous lookups by
// default; Samba allows them unless restrict anonymous is set), on an SMB
// session of its own that it closes before it returns, and checks the
// computer's name against ctx's expected name (WithExpectedName) before
// any credentials are sent.
//
// It does not check administrator rights, and nothing it returns is a
// secret. Failures match ErrNoBuiltinAdministrator.
func BuiltinAdministrator(ctx context.Context, addr string, creds Credentials) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("%w on %s: %w", ErrNoBuiltinAdministrator, addr, err)
	}
	sess, err := smbconn.Dial(ctx, addr, smbAuth(creds), smbconn.Options{ExpectName: ExpectedName(ctx)})
	if err != nil {
		return fail(err)
	}
	defer sess.Close()
	info := sess.Info()
	if !info.HasChallenge || info.Challenge.NetBIOSComputer == "" {
		return fail(errors.New("the computer gave no NetBIOS name"))
	}
	var admin string
	err = withLSA(ctx, &Grant{session: sess}, func(cli lsat.LsarpcClient, pol *lsat.Handle) error {
		var err error
		admin, err = builtinAdministrator(ctx, cli, pol, info.Challenge.NetBIOSComputer)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return admin, nil
}

// builtinAdministrator is BuiltinAdministrator on an open policy of the
// computer called name.
func builtinAdministrator(ctx context.Context, cli lsat.LsarpcClient, pol *lsat.Handle, name string) (string, error) {
	n := uint16(2 * len(utf16.Encode([]rune(name))))
	names, err := cli.LookupNames2(ctx, &lsat.LookupNames2Request{
		Policy: pol, Count: 1,
		Names:          []*dtyp.UnicodeString{{Length: n, MaximumLength: n, Buffer: name}},
		TranslatedSIDs: &lsat.TranslatedSIDsEx{},
		LookupLevel:    lsat.LookupLevelWorkstation, ClientRevision: 2,
	})
	if err != nil {
		return "", err
	}
	if names.ReferencedDomains == nil || len(names.ReferencedDomains.Domains) == 0 || names.ReferencedDomains.Domains[0] == nil ||
		names.ReferencedDomains.Domains[0].SID == nil || len(names.ReferencedDomains.Domains[0].SID.SubAuthority) >= 15 {
		return "", fmt.Errorf("no domain SID for %s", name)
	}
	dom := names.ReferencedDomains.Domains[0].SID
	sid := &dtyp.SID{Revision: dom.Revision, IDAuthority: dom.IDAuthority,
		SubAuthority: append(append([]uint32(nil), dom.SubAuthority...), ridBuiltinAdministrator)}
	sid.SubAuthorityCount = uint8(len(sid.SubAuthority))
	sids, err := cli.LookupSids2(ctx, &lsat.LookupSids2Request{
		Policy:          pol,
		SIDEnumBuffer:   &lsat.SIDEnumBuffer{Entries: 1, SIDInfo: []*lsat.SIDInformation{{SID: sid}}},
		TranslatedNames: &lsat.TranslatedNamesEx{},
		LookupLevel:     lsat.LookupLevelWorkstation, ClientRevision: 2,
	})
	if err != nil {
		return "", err
	}
	if sids.TranslatedNames == nil || len(sids.TranslatedNames.Names) != 1 || sids.TranslatedNames.Names[0] == nil ||
		sids.TranslatedNames.Names[0].Name == nil || sids.TranslatedNames.Names[0].Name.Buffer == "" || sids.MappedCount != 1 {
		return "", fmt.Errorf("RID %d of %s is not mapped", ridBuiltinAdministrator, name)
	}
	return sids.TranslatedNames.Names[0].Name.Buffer, nil
}
