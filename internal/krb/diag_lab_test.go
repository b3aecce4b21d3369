package krb_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/lanconnect/lanconnect/internal/krb"
	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/oiweiwei/gokrb5.fork/v9/crypto"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/etypeID"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/nametype"
	"github.com/oiweiwei/gokrb5.fork/v9/types"
)

// TestLabDiagnoses proves each diagnosis against the lab's real KDC
// (Samba AD DC), and each kind of credential: an NT hash, an AES key, a
// keytab exported by samba-tool and a ccache made by MIT kinit.
func TestLabDiagnoses(t *testing.T) {
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{}})
	dc := lab.DC
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kdc := netip.AddrPortFrom(dc.Addr, 88).String()
	newCache := func() *krb.Cache {
		c := krb.NewCache(krb.Config{Timeout: labKDCTimeout, KDC: dc.Addr.String()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	admin := krb.Credential{User: dc.Admin.User, Realm: dc.Realm, Password: dc.Admin.Password}
	dcSPN := mustSPN(t, krb.LDAP, dc.Hostname)

	pw := map[string]string{}
	for _, u := range []string{"lcwrong", "lcdis", "lcexp", "lclock", "lckt"} {
		pw[u] = fmt.Sprintf("Lc7-%s-%d-Qx", u, time.Now().UnixNano()%100000)
		if err := dc.AddUser(ctx, u, pw[u]); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"user", "disable", "lcdis"},
		{"user", "setexpiry", "lcexp", "--days=0"},
		{"domain", "passwordsettings", "set", "--account-lockout-threshold=2"},
	} {
		if out, err := dc.SambaTool(ctx, args...); err != nil {
			t.Fatalf("samba-tool %v: %v\n%s", args, err, out)
		}
	}

	check := func(name string, err, want error) *krb.Error {
		t.Helper()
		var ke *krb.Error
		if !errors.Is(err, want) || !errors.As(err, &ke) {
			t.Errorf("%s: got %v, want %v", name, err, want)
			return nil
		}
		if ke.KDC != kdc {
			t.Errorf("%s: KDC %q, want %s", name, ke.KDC, kdc)
		}
		t.Logf("%s: %v", name, err)
		return ke
	}

	// Sixteen concurrent users of one credential (a bulk run) share one
	// TGT and one ticket per SPN.
	bulk := newCache()
	cifsDC := mustSPN(t, krb.CIFS, dc.Hostname)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := bulk.ServiceTicket(ctx, admin, dcSPN); err != nil {
				errs <- err
			}
			if _, err := bulk.Initiator(ctx, admin, cifsDC); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := bulk.Stats(); st.ASExchanges != 1 || st.TGSReqs != 2 {
		t.Errorf("16 concurrent users: %+v, want 1 AS exchange and 2 TGS-REQs", st)
	} else {
		t.Logf("16 concurrent users: %+v", st)
	}

	// Unknown user; wrong password; unknown SPN.
	check("unknown user", newCache().TGT(ctx, krb.Credential{User: "nosuchuser", Realm: dc.Realm, Password: "x-Y-z-123"}), krb.ErrPrincipalUnknown)
	check("wrong password", newCache().TGT(ctx, krb.Credential{User: "lcwrong", Realm: dc.Realm, Password: pw["lcwrong"] + "x"}), krb.ErrWrongPassword)
	c := newCache()
	_, err := c.ServiceTicket(ctx, admin, mustSPN(t, krb.CIFS, "stale-name."+strings.ToLower(dc.Realm)))
	check("unknown SPN", err, krb.ErrSPNUnknown)
	if _, err := c.ServiceTicket(ctx, admin, dcSPN); err != nil {
		t.Errorf("ldap/ ticket for the DC after an unknown SPN: %v", err)
	}

	// Disabled, expired, locked.
	check("disabled", newCache().TGT(ctx, krb.Credential{User: "lcdis", Realm: dc.Realm, Password: pw["lcdis"]}), krb.ErrAccountDisabled)
	check("expired", newCache().TGT(ctx, krb.Credential{User: "lcexp", Realm: dc.Realm, Password: pw["lcexp"]}), krb.ErrAccountExpired)
	for i := range 2 {
		check(fmt.Sprintf("lockout try %d", i+1), newCache().TGT(ctx, krb.Credential{User: "lclock", Realm: dc.Realm, Password: "wrong-" + fmt.Sprint(i)}), krb.ErrWrongPassword)
	}
	// Samba's KDC answers a locked-out account with KDC_ERR_CLIENT_REVOKED
	// and no NT status in its e-data (Windows sends
	// STATUS_ACCOUNT_LOCKED_OUT, see TestFakeKDCDiagnoses), so the
	// diagnosis is the account category without its reason.
	ke := check("locked", newCache().TGT(ctx, krb.Credential{User: "lclock", Realm: dc.Realm, Password: pw["lclock"]}), krb.ErrAccount)
	if ke != nil && (ke.Code != 18 || errors.Is(ke, krb.ErrAccountDisabled) || errors.Is(ke, krb.ErrWrongPassword)) {
		t.Errorf("locked: code %d, %v", ke.Code, ke)
	}

	// No common encryption type: offer DES only, which the KDC refuses.
	etc := krb.NewCache(krb.Config{Timeout: labKDCTimeout, KDC: dc.Addr.String(), Etypes: []int32{etypeID.DES_CBC_MD5}})
	defer etc.Close()
	check("no common etype", etc.TGT(ctx, admin), krb.ErrNoCommonEtype)

	// The other credential kinds get tickets from the real KDC.
	cname := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, dc.Admin.User)
	rc4, _, err := crypto.GetKeyFromPassword(dc.Admin.Password, cname, dc.Realm, etypeID.RC4_HMAC, types.PADataSequence{})
	if err != nil {
		t.Fatal(err)
	}
	aes, _, err := crypto.GetKeyFromPassword(dc.Admin.Password, cname, dc.Realm, etypeID.AES256_CTS_HMAC_SHA1_96, types.PADataSequence{})
	if err != nil {
		t.Fatal(err)
	}
	ktPath := filepath.Join(t.TempDir(), "lckt.keytab")
	if out, err := dc.SambaTool(ctx, "domain", "exportkeytab", ktPath, "--principal=lckt@"+dc.Realm); err != nil {
		t.Fatalf("exportkeytab: %v\n%s", err, out)
	}
	kt, err := krb.LoadKeytab(ktPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, cred := range map[string]krb.Credential{
		"NT hash": {User: dc.Admin.User, Realm: dc.Realm, NTHash: rc4.KeyValue},
		"AES key": {User: dc.Admin.User, Realm: dc.Realm, AESKey: aes.KeyValue},
		"keytab":  {User: "lckt", Realm: dc.Realm, Keytab: kt},
	} {
		c := newCache()
		if _, err := c.ServiceTicket(ctx, cred, dcSPN); err != nil {
			t.Errorf("%s: %v", name, err)
		} else if st := c.Stats(); st.ASExchanges != 1 || st.TGSReqs != 1 {
			t.Errorf("%s: %+v", name, st)
		}
	}
	// LDAP: a SASL GSSAPI bind over LDAPS with the cached ldap/ ticket.
	lc := newCache()
	gc, err := lc.LDAPClient(ctx, admin, dcSPN)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ldap.DialURL("ldaps://"+netip.AddrPortFrom(dc.Addr, 636).String(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: dc.CAPool, ServerName: dc.Hostname}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.GSSAPIBind(gc, dcSPN, ""); err != nil {
		t.Fatalf("GSSAPI bind over LDAPS: %v", err)
	}
	// Samba refuses searches without a bind (and has no WhoAmI): a
	// subtree search answered proves the bind.
	sr, err := conn.Search(ldap.NewSearchRequest(dc.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 10, false,
		"(sAMAccountName="+dc.Admin.User+")", []string{"sAMAccountName"}, nil))
	if err != nil || len(sr.Entries) != 1 {
		t.Fatalf("search after the Kerberos bind: %v, %v", sr, err)
	}
	t.Logf("LDAP GSSAPI bind over LDAPS: found %s; %+v", sr.Entries[0].DN, lc.Stats())
	// Without a bind the same search is refused (the check can fail).
	anon, err := ldap.DialURL("ldaps://"+netip.AddrPortFrom(dc.Addr, 636).String(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: dc.CAPool, ServerName: dc.Hostname}))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if sr, err := anon.Search(ldap.NewSearchRequest(dc.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 10, false,
		"(sAMAccountName="+dc.Admin.User+")", []string{"sAMAccountName"}, nil)); err == nil && len(sr.Entries) > 0 {
		t.Fatalf("an anonymous search found %d entries: the bind proves nothing", len(sr.Entries))
	}

	// ccache from MIT kinit (the TGT was made elsewhere: no AS exchange).
	dir := t.TempDir()
	conf := filepath.Join(dir, "krb5.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[libdefaults]\n\tdefault_realm = %s\n\tdns_lookup_kdc = false\n[realms]\n\t%s = {\n\t\tkdc = %s\n\t}\n", dc.Realm, dc.Realm, dc.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	ccPath := filepath.Join(dir, "ccache")
	kinit := exec.CommandContext(ctx, "kinit", dc.Admin.User+"@"+dc.Realm)
	kinit.Env = append(os.Environ(), "KRB5_CONFIG="+conf, "KRB5CCNAME=FILE:"+ccPath)
	kinit.Stdin = strings.NewReader(dc.Admin.Password + "\n")
	if out, err := kinit.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	cc, err := krb.LoadCCache("FILE:" + ccPath)
	if err != nil {
		t.Fatal(err)
	}
	// krb5.conf given: the KDC comes from it.
	ccCache := krb.NewCache(krb.Config{Timeout: labKDCTimeout, KRB5Conf: conf})
	defer ccCache.Close()
	if _, err := ccCache.ServiceTicket(ctx, krb.Credential{CCache: cc}, dcSPN); err != nil {
		t.Errorf("ccache: %v", err)
	} else if st := ccCache.Stats(); st.ASExchanges != 0 || st.ASReqs != 0 || st.TGSReqs != 1 {
		t.Errorf("ccache: %+v, want no AS exchange and one TGS-REQ", st)
	}
}

// TestLabClockSkew runs against a DC whose clock is 10 minutes ahead
// (libfaketime): the diagnosis says by how much.
func TestLabClockSkew(t *testing.T) {
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{ClockSkew: 10 * time.Minute}})
	dc := lab.DC
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := krb.NewCache(krb.Config{Timeout: labKDCTimeout, DC: dc.Addr.String(), Resolver: labResolver(dc)})
	defer c.Close()
	err := c.TGT(ctx, krb.Credential{User: dc.Admin.User, Realm: dc.Realm, Password: dc.Admin.Password})
	var ke *krb.Error
	if !errors.Is(err, krb.ErrClockSkew) || !errors.As(err, &ke) {
		t.Fatalf("got %v, want ErrClockSkew", err)
	}
	if d := ke.Skew - 10*time.Minute; d < -5*time.Second || d > 5*time.Second {
		t.Errorf("skew %v, want about 10m", ke.Skew)
	}
	if !strings.Contains(err.Error(), ke.Skew.String()+" ahead") {
		t.Errorf("message: %v", err)
	}
	t.Logf("%v", err)
}
