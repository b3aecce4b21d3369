package testlab

import (
	"context"
	"fmt"
	"strings"
)

// MakeAdminBuiltin makes the target's administrator account (Admin) its
// built-in administrator, RID 500 of the target's local SID, as on
// Windows, where the account is named per machine (and often renamed).
// Samba maps no account to RID 500 unless told, so a test of anything that
// finds the built-in administrator by RID (LSA lookups, legacy LAPS'
// default account) calls this first. It changes the target's password
// database only; it restarts nothing. It does not rename the account.
func (t *Target) MakeAdminBuiltin(ctx context.Context) error {
	out, err := run(ctx, nil, nil, "net", "-s", t.SMBConf, "getlocalsid")
	if err != nil {
		return err
	}
	fields := strings.Fields(out)
	if len(fields) == 0 || !strings.HasPrefix(fields[len(fields)-1], "S-1-5-21-") {
		return fmt.Errorf("testlab: net getlocalsid on %s printed no domain SID: %q", t.NetBIOSName, strings.TrimSpace(out))
	}
	sid := fields[len(fields)-1]
	_, err = run(ctx, nil, nil, "pdbedit", "-s", t.SMBConf, "-r", "-u", t.Admin.User, "-U", sid+"-500")
	return err
}
