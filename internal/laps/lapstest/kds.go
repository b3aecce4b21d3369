package lapstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"strings"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/gkdi/isdkey/v1"

	"github.com/lanconnect/lanconnect/internal/laps"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/internal/winemu"
)

// KeyServer returns a winemu server (not started) that answers GetKey
// from a new synthetic root key of dc's realm (id names it), as the DC
// would for the lab's LAPS technicians: both may authenticate, only
// dc.LAPS.Reader gets keys, only for the readers group's security
// descriptor and only at packet privacy. root is the server's Windows
// directory (a temporary directory). The caller starts and closes it, and
// encrypts with the returned root key (laps.Protect).
func KeyServer(dc *testlab.DC, id, root string, logger *slog.Logger) (*winemu.Server, *laps.RootKey, error) {
	data := make([]byte, 64)
	if _, err := rand.Read(data); err != nil {
		return nil, nil, err
	}
	gid, err := laps.ParseGUID(id)
	if err != nil {
		return nil, nil, err
	}
	rk := &laps.RootKey{ID: gid, Data: data, Domain: strings.ToLower(dc.Realm), Forest: strings.ToLower(dc.Realm)}
	readersSD, err := laps.TargetSD(dc.LAPS.ReadersSID)
	if err != nil {
		return nil, nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &winemu.Server{
		Users: map[string]winemu.User{
			dc.LAPS.Reader.User: {Password: dc.LAPS.Reader.Password},
			dc.LAPS.Denied.User: {Password: dc.LAPS.Denied.Password},
		},
		Root:        root,
		NetBIOSName: testlab.DCNetBIOSName,
		Logger:      logger,
	}
	err = srv.Register(winemu.Interface{Name: "ISDKey", Syntax: *isdkey.ISDKeySyntaxV1_0,
		Handle: isdkey.NewISDKeyServerHandle(&laps.KeyService{RootKey: rk,
			Caller: func(ctx context.Context) (string, bool) {
				c, ok := winemu.CallFromContext(ctx)
				return c.User, ok && c.AuthLevel == dcerpc.AuthLevelPktPrivacy
			},
			Authorize: func(user string, sd []byte) bool {
				return strings.EqualFold(user, dc.LAPS.Reader.User) && bytes.Equal(sd, readersSD)
			}})})
	if err != nil {
		return nil, nil, err
	}
	return srv, rk, nil
}
