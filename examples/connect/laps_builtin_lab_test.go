package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/lanconnect/lanconnect/internal/laps"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestLabLAPSBuiltin runs `connect -laps` without -laps-account against
// a domain member whose only administrator password is the legacy LAPS
// one on its computer object. The technician lapsreader logs on to the
// member (a domain account, NTLM through the member's winbind) but is not
// an administrator there, so connect asks the member's LSA, as
// lapsreader, for its RID-500 account and logs on as that account with
// the LAPS password. The lab's RID-500 account is its administrator
// "<lab>-admin" (made RID 500 with pdbedit), a name that differs in every
// lab and is not "Administrator": connect can only have it from LSA.
func TestLabLAPSBuiltin(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	if err := testlab.AvailableDC(); err != nil {
		t.Skip(err)
	}
	buildAll(t)
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{LAPS: true}, Client: true,
		Targets: []testlab.TargetSpec{{DomainMember: true}}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dc, m := lab.DC, lab.Targets[0]
	if strings.EqualFold(m.Admin.User, "Administrator") {
		t.Fatalf("the member's administrator is called %q: the test could not tell LSA from a guess", m.Admin.User)
	}

	// Samba maps no account to RID 500 unless told: make the member's
	// administrator its built-in one, as on Windows.
	if err := m.MakeAdminBuiltin(ctx); err != nil {
		t.Fatal(err)
	}

	// The join made CN=NAME,CN=Computers; move it into the LAPS OU, whose
	// inheritable ACEs let lapsreader read the password, then store it.
	c, err := dc.DialLDAP(ctx, dc.Admin)
	if err != nil {
		t.Fatal(err)
	}
	rdn := "CN=" + m.NetBIOSName
	err = c.ModifyDN(ldap.NewModifyDNRequest(rdn+",CN=Computers,"+dc.BaseDN, rdn, true, dc.LAPS.OU))
	c.Close()
	if err != nil {
		t.Fatalf("move %s into %s: %v", m.NetBIOSName, dc.LAPS.OU, err)
	}
	future := []byte(laps.Filetime(time.Now().Add(7 * 24 * time.Hour)))
	if _, err := dc.SetLAPS(ctx, m.NetBIOSName, map[string][]byte{laps.AttrLegacyPassword: []byte(m.Admin.Password), laps.AttrLegacyExpiration: future}); err != nil {
		t.Fatalf("SetLAPS %s: %v", m.NetBIOSName, err)
	}
	e := startWinemu(ctx, t, m, m.Admin.Password)

	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	tech := dc.LAPS.Reader
	r := runConnectIn(ctx, t, lab.Client, tech.Password, "-console", net.JoinHostPort(lab.Client.Addr.String(), "0"), "-applet", applet,
		"-checkin-timeout", "30s", "-method", "scm",
		"-laps", "-ldap", "ldaps://"+dc.Addr.String(), "-ldap-ca", dc.CAFile, "-ldap-server-name", dc.Hostname,
		"-user", dc.Domain+`\`+tech.User, m.NetBIOSName)
	if strings.Contains(r.stderr, m.Admin.Password) {
		t.Fatalf("the LAPS password appears in connect's log:\n%s", r.stderr)
	}
	for _, ev := range r.events {
		if strings.Contains(fmt.Sprint(ev.raw), m.Admin.Password) {
			t.Fatalf("the LAPS password appears in connect's NDJSON: %v", ev.raw)
		}
	}
	checkRunningThenClosed(t, r, m.NetBIOSName, "scm")
	for _, ev := range r.of(m.NetBIOSName) {
		if ev.State == "Running" {
			if ev.raw["credential_source"] != "laps-legacy" || ev.raw["account"] != `.\`+m.Admin.User {
				t.Fatalf("running with %v as %v, want laps-legacy as .\\%s: %v\n%s", ev.raw["credential_source"], ev.raw["account"], m.Admin.User, ev.raw, r.stderr)
			}
			break
		}
	}
	// connect looks the account up only after the technician logged on
	// and was found not to be an administrator; a failed logon would
	// have ended LAPS with "laps-failed". The member saw no failed logon
	// at all: not the technician's, not the built-in account's.
	if l, err := m.FailedLogons(); err != nil || len(l) != 0 {
		t.Fatalf("failed logons on the member (%v):\n%s", err, strings.Join(l, "\n"))
	}
	t.Logf("%s (%v)", brief(r.of(m.NetBIOSName)), r.took)
	if l := leftovers(t, m); len(l) != 0 {
		t.Fatalf("left on the target: %v", l)
	}
	checkNoApplets(t, e)
	if s := winemuServices(t, e.ctl); len(s) != 0 {
		t.Fatalf("services left: %v", s)
	}
}
