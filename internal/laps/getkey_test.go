package laps_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/gkdi/isdkey/v1"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/laps"
	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/winemu"
	"github.com/lanconnect/lanconnect/internal/winenc"
)

const (
	groupSID   = "S-1-5-21-1004336348-1177238915-682003330-1120" // "LAPS Readers"
	readerUser = "helpdesk"
	readerPass = "H3lpd3sk-Pass!"
	otherUser  = "intern"
	otherPass  = "Int3rn-Pass!"
	lapsSecret = "q9!Vv-LAPS-Secret-7Zp"
)

// keyServer runs winemu with only the GKDI interface, serving GetKey from
// a synthetic root key to readerUser for groupSID.
func keyServer(t *testing.T) (*laps.RootKey, string, *testutil.LockedBuffer) {
	t.Helper()
	data := make([]byte, 64)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	id, _ := laps.ParseGUID("7d3f4a2e-9b1c-4d5e-8f60-718293a4b5c6")
	rk := &laps.RootKey{ID: id, Data: data, Domain: "lab.test", Forest: "lab.test"}
	want, _ := laps.TargetSD(groupSID)
	logs := &testutil.LockedBuffer{}
	srv := &winemu.Server{
		Users: map[string]winemu.User{
			readerUser: {Password: readerPass},
			otherUser:  {Password: otherPass},
		},
		Root:        t.TempDir(),
		NetBIOSName: "DC1",
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	err := srv.Register(winemu.Interface{Name: "ISDKey", Syntax: *isdkey.ISDKeySyntaxV1_0,
		Handle: isdkey.NewISDKeyServerHandle(&laps.KeyService{RootKey: rk, Caller: winemuCaller,
			Authorize: func(user string, sd []byte) bool {
				return strings.EqualFold(user, readerUser) && bytes.Equal(sd, want)
			}})})
	if err != nil {
		t.Fatal(err)
	}
	ip := testutil.LoopbackIP()
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx, ip); err != nil {
		cancel()
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("cannot listen on %s:135: %v", ip, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		srv.Close()
	})
	return rk, ip, logs
}

// winemuCaller is KeyService.Caller for winemu.
func winemuCaller(ctx context.Context) (string, bool) {
	c, ok := winemu.CallFromContext(ctx)
	if !ok {
		return "", false
	}
	return c.User, c.AuthLevel == dcerpc.AuthLevelPktPrivacy
}

func encryptedValue(t *testing.T, rk *laps.RootKey) []byte {
	t.Helper()
	upd := time.Now().Add(-time.Hour)
	pt := winenc.EncodeUTF16LE(string(laps.EncodeWindowsJSON("LapsAdmin", lapsSecret, upd)) + "\x00")
	blob, err := laps.Protect(rk, groupSID, pt, laps.ProtectOptions{Time: upd})
	if err != nil {
		t.Fatal(err)
	}
	return laps.EncodeEncrypted(upd, blob)
}

// TestGetKeyEndToEnd decrypts an msLAPS-EncryptedPassword value through
// GetKey over the wire: ept_map, NTLM at packet privacy as an authorised
// account, the envelope, the derivation and the decryption. An account
// outside the group gets the typed refusal that names the group.
func TestGetKeyEndToEnd(t *testing.T) {
	rk, ip, srvLogs := keyServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := encryptedValue(t, rk)
	exp := time.Now().Add(24 * time.Hour)

	var clientLogs testutil.LockedBuffer
	logger := slog.New(slog.NewTextHandler(&clientLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	creds, err := adauth.Parse(`LAB\`+readerUser, readerPass)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := laps.ParseEncrypted(value)
	if err != nil {
		t.Fatal(err)
	}
	kc := &laps.KeyClient{Host: ip, Credentials: creds, ServerName: "DC1", Logger: logger}
	p, err := enc.Decrypt(ctx, kc, laps.Filetime(exp))
	if err != nil {
		t.Fatalf("decrypt as %s: %v\nserver log:\n%s", readerUser, err, srvLogs.String())
	}
	if p.Format != laps.WindowsEncrypted || p.Account != "LapsAdmin" || p.Secret != lapsSecret || p.CheckExpiry(time.Now()) != nil {
		t.Fatalf("got %v", p)
	}

	other, _ := adauth.Parse(`LAB\`+otherUser, otherPass)
	kc = &laps.KeyClient{Host: ip, Credentials: other, ServerName: "DC1", Logger: logger}
	_, err = enc.Decrypt(ctx, kc, "")
	var re *laps.RefusedError
	if !errors.Is(err, laps.ErrDecryptionRefused) || !errors.As(err, &re) || re.SID != groupSID {
		t.Fatalf("as %s: %v", otherUser, err)
	}
	if !strings.Contains(err.Error(), groupSID) {
		t.Fatalf("the refusal does not name the group: %v", err)
	}
	// Neither the LAPS password nor the technicians' passwords appear in
	// any error or log line.
	for _, s := range []string{err.Error(), clientLogs.String(), srvLogs.String()} {
		for _, secret := range []string{lapsSecret, readerPass, otherPass} {
			if strings.Contains(s, secret) {
				t.Fatalf("a secret leaked into %q", s)
			}
		}
	}

	// A wrong password is a GetKey failure, not a refusal.
	bad, _ := adauth.Parse(`LAB\`+readerUser, "wrong-"+readerPass)
	kc = &laps.KeyClient{Host: ip, Credentials: bad, ServerName: "DC1"}
	if _, err := enc.Decrypt(ctx, kc, ""); err == nil || errors.Is(err, laps.ErrDecryptionRefused) || !errors.Is(err, laps.ErrGetKey) {
		t.Fatalf("wrong password: %v", err)
	} else if strings.Contains(err.Error(), readerPass) {
		t.Fatalf("error leaks the password: %v", err)
	}
	// A DC that announces another name is not sent credentials.
	kc = &laps.KeyClient{Host: ip, Credentials: creds, ServerName: "OTHERDC"}
	if _, err := enc.Decrypt(ctx, kc, ""); !errors.Is(err, laps.ErrGetKey) {
		t.Fatalf("wrong server name: %v", err)
	}
}
