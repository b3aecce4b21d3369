package winemu_test

import (
	"context"
	"encoding/hex"
	"testing"
	"time"
	"unicode/utf16"

	//lint:ignore SA1019 NT hashes are MD4 by definition (MS-NLMP).
	"golang.org/x/crypto/md4"

	"github.com/oiweiwei/go-msrpc/dcerpc"

	"github.com/lanconnect/lanconnect/internal/winemu"
)

// ntHash is MD4 over the UTF-16LE password (MS-NLMP 3.3.1).
func ntHash(pw string) string {
	h := md4.New()
	for _, u := range utf16.Encode([]rune(pw)) {
		h.Write([]byte{byte(u), byte(u >> 8)})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestNTHashAccount authenticates a client that knows the password
// against an account stored only as its NT hash.
func TestNTHashAccount(t *testing.T) {
	checkLeaks(t)
	e := startServer(t, func(s *winemu.Server) {
		s.Users = map[string]winemu.User{"hashuser": {NTHash: ntHash("H4sh-Only!"), Admin: true}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, done := e.dialSCM(ctx, t, "HashUser", "H4sh-Only!", dcerpc.AuthLevelPktPrivacy)
	defer done()
	openSCM(ctx, t, cli, scManagerConnect|scManagerCreateService)
}
