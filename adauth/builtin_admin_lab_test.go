package adauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// The built-in Administrator of a lab target, anonymously and as its
// administrator.
func TestBuiltinAdministratorLab(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tg := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := Parse(`.\`+tg.Admin.User, tg.Admin.Password)
	if err != nil {
		t.Fatal(err)
	}
	// Samba maps no account to RID 500 unless told: make the lab's
	// administrator the built-in one, as on Windows.
	if err := tg.MakeAdminBuiltin(ctx); err != nil {
		t.Fatal(err)
	}
	user, err := Parse(`.\`+tg.User.User, tg.User.Password) // an ordinary account may look it up
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range []Credentials{admin, user} {
		name, err := BuiltinAdministrator(WithExpectedName(ctx, tg.NetBIOSName), tg.Addr.String(), cr)
		if err != nil || !strings.EqualFold(name, tg.Admin.User) {
			t.Fatalf("as %s: %q, %v; want %s", cr.Account(), name, err, tg.Admin.User)
		}
	}
	if _, err := BuiltinAdministrator(ctx, tg.Addr.String(), Credentials{}); !errors.Is(err, ErrNoBuiltinAdministrator) {
		t.Fatalf("without credentials: %v", err)
	}
	if _, err := BuiltinAdministrator(WithExpectedName(ctx, "OTHERPC"), tg.Addr.String(), admin); !errors.Is(err, smbconn.ErrIdentityMismatch) || !errors.Is(err, ErrNoBuiltinAdministrator) {
		t.Fatalf("another name: %v", err)
	}
}
