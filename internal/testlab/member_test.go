package testlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kinit gets a TGT for the domain Administrator with MIT kinit (the peer
// we compare with), in the client namespace, and returns the environment
// (KRB5_CONFIG, KRB5CCNAME) that uses it.
func kinit(ctx context.Context, t *testing.T, lab *Lab) []string {
	t.Helper()
	dc := lab.DC
	dir := t.TempDir()
	conf := filepath.Join(dir, "krb5.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[libdefaults]\n\tdefault_realm = %s\n\tdns_lookup_kdc = false\n\trdns = false\n[realms]\n\t%s = {\n\t\tkdc = %s\n\t}\n", dc.Realm, dc.Realm, dc.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KRB5_CONFIG="+conf, "KRB5CCNAME=FILE:"+filepath.Join(dir, "ccache"))
	cmd := lab.Client.Command(ctx, "kinit", dc.Admin.User+"@"+dc.Realm)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(dc.Admin.Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	return env
}

// TestDomainMember starts a DC with NTLM disabled and a member target that
// refuses NTLM, and checks with Samba's own client what the Kerberos code
// relies on: the member's FQDN resolves through the DC's DNS in the
// client namespace, smbclient with a Kerberos ticket reaches its ADMIN$,
// and an NTLM logon with the same domain account is refused.
func TestDomainMember(t *testing.T) {
	lab := New(t, Options{DC: &DCSpec{NoNTLM: true}, Targets: []TargetSpec{{DomainMember: true, Variant: NTLMDisabled}}, Client: true})
	t.Logf("lab start with a DC and a joined member: %s", lab.Timings())
	m := lab.Targets[0]
	if !m.Member || m.FQDN == "" || m.Realm != lab.DC.Realm || m.Workgroup != lab.DC.Domain {
		t.Fatalf("member fields: %+v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := lab.Client.Command(ctx, "getent", "hosts", m.FQDN).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), m.Addr.String()+" ") {
		t.Fatalf("client resolves %s to %q (%v), want %s", m.FQDN, out, err, m.Addr)
	}
	env := kinit(ctx, t, lab)
	// -I: smbclient caches name lookups in the host's gencache, across
	// labs, and member names are the same in every lab.
	cmd := lab.Client.Command(ctx, "smbclient", "//"+m.FQDN+"/ADMIN$", "-I", m.Addr.String(), "--use-kerberos=required", "-c", "ls")
	cmd.Env = env
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Temp") {
		t.Fatalf("smbclient with Kerberos to %s ADMIN$: %v\n%s\nmember smbd log:\n%s", m.FQDN, err, out, fileTail(filepath.Join(m.dir, "log", "log.smbd"), 30))
	}
	klist := exec.CommandContext(ctx, "klist")
	klist.Env = env
	out, _ = klist.CombinedOutput()
	if !strings.Contains(strings.ToLower(string(out)), "cifs/"+m.FQDN) {
		t.Errorf("klist has no cifs/%s ticket:\n%s", m.FQDN, out)
	}
	// The member's keytab, as winemu will use it, accepts the host/
	// ticket (MIT kvno -k checks the ticket with the keytab).
	kt := filepath.Join(t.TempDir(), "member.keytab")
	if err := m.ExportKeytab(ctx, "host/"+m.FQDN, kt); err != nil {
		t.Fatal(err)
	}
	kvno := exec.CommandContext(ctx, "kvno", "-k", kt, "host/"+m.FQDN)
	kvno.Env = env
	if out, err := kvno.CombinedOutput(); err != nil || !(strings.Contains(string(out), "keytab entry valid") || strings.Contains(string(out), "keytab validation ok")) {
		t.Errorf("kvno -k with the exported keytab: %v\n%s", err, out)
	}
	// NTLM with the domain account: refused by the member.
	pw := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(pw, []byte("username = "+lab.DC.Admin.User+"\npassword = "+lab.DC.Admin.Password+"\ndomain = "+lab.DC.Domain+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = lab.Client.Command(ctx, "smbclient", "//"+m.Addr.String()+"/ADMIN$", "--use-kerberos=disabled", "-A", pw, "-c", "ls")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "NT_STATUS_") {
		t.Fatalf("NTLM logon of the domain admin on the member: want a refusal, got %v\n%s", err, out)
	}
	t.Logf("NTLM logon refused: %s", strings.TrimSpace(string(out)))
}

// TestDCClockSkew starts a DC whose clock runs 10 minutes ahead (faketime)
// and checks that MIT kinit, the peer, gets the clock-skew error from it.
func TestDCClockSkew(t *testing.T) {
	lab := New(t, Options{DC: &DCSpec{ClockSkew: 10 * time.Minute}, Client: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dc := lab.DC
	dir := t.TempDir()
	conf := filepath.Join(dir, "krb5.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[libdefaults]\n\tdefault_realm = %s\n\tdns_lookup_kdc = false\n\tkdc_timesync = 0\n[realms]\n\t%s = {\n\t\tkdc = %s\n\t}\n", dc.Realm, dc.Realm, dc.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := lab.Client.Command(ctx, "kinit", dc.Admin.User+"@"+dc.Realm)
	cmd.Env = append(os.Environ(), "KRB5_CONFIG="+conf, "KRB5CCNAME=FILE:"+filepath.Join(dir, "ccache"))
	cmd.Stdin = strings.NewReader(dc.Admin.Password + "\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "clock skew") {
		t.Fatalf("kinit against a DC 10 minutes ahead: want a clock skew error, got %v\n%s", err, out)
	}
	t.Logf("kinit: %s", strings.TrimSpace(string(out)))
}
