package adauth

import (
	"context"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

func TestZZBreakdown(t *testing.T) {
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}, {}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var a SMBAuthenticator
	for i, tg := range lab.Targets {
		for round := range 3 {
			for _, local := range []bool{false, true} {
				start := time.Now()
				g, err := a.Authenticate(ctx, tg.Addr.String(), labCreds(t, tg.Admin, local))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("target %d round %d local %v: total %v logon %v local=%v checks %+v", i, round, local, time.Since(start), g.Facts.LogonTook, g.Facts.LocalAccount, g.Facts.Checks)
				g.Close()
			}
		}
	}
}
