package remotereg

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// On Samba, the parameter key that writeParams creates is readable by
// administrators only: Samba 4.17 ignores the descriptor given to
// BaseRegCreateKey (its default DACL lets Everyone read), and honours
// BaseRegSetKeySecurity, which writeParams sends after creating the key
// and checks by reading the DACL back. A plain user's open then gets
// ERROR_ACCESS_DENIED; the keys above it stay as they were.
func TestLabParamKeyAdminsOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tgt := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := labTarget(ctx, t, tgt, tgt.Admin)
	user := labTarget(ctx, t, tgt, tgt.User)
	l := fastLauncher(TransportPipe)
	spec := paramSpec(`C:\Windows\Temp\x.exe`)
	path := paramKeyPath(spec)

	cli, conn, err := l.winregOverPipe(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	created, err := l.writeParams(ctx, cli, admin, spec, nil)
	conn.close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli, conn, err := l.winregOverPipe(context.Background(), admin)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.close(context.Background())
		for i := len(created) - 1; i >= 0; i-- {
			if err := deleteKey(context.Background(), cli, created[i].Name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	open := func(tg target, key string) error { return tryOpenKey(ctx, t, l, tg, key) }
	if err := open(admin, path); err != nil {
		t.Fatalf("administrator cannot open the key: %v", err)
	}
	if err := open(user, path); !errors.Is(err, ErrorAccessDenied) {
		t.Fatalf("a plain user opening the parameter key: %v, want ERROR_ACCESS_DENIED", err)
	}
	// The vendor's key above it is not restricted (it holds no values).
	parent := path[:strings.LastIndexByte(path, '\\')]
	if err := open(user, parent); err != nil {
		t.Fatalf("a plain user opening %s: %v", parent, err)
	}
}
