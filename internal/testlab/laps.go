package testlab

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/lanconnect/lanconnect/internal/winenc"
)

// LAPSLab is what DCSpec.LAPS adds to the DC: both LAPS schemas, an OU for
// LAPS-managed computers, and two technicians.
type LAPSLab struct {
	// OU is the OU that holds LAPS-managed computers (SetLAPS creates
	// them there). Its inheritable ACEs let ReadersGroup read the
	// confidential password attributes.
	OU string
	// ReadersGroup is the DN of the "LAPS Readers" group, ReadersSID its
	// SID (the SID to encrypt Windows LAPS passwords for).
	ReadersGroup, ReadersSID string
	// Reader is a member of ReadersGroup: it may read the passwords.
	Reader Account
	// Denied is an ordinary domain user: the directory withholds the
	// password attributes from it.
	Denied Account
}

// lapsAttr is one LAPS schema attribute as the lab defines it. The OIDs
// are Microsoft's; the schemaIDGUIDs are the lab's own.
type lapsAttr struct {
	cn, name, oid, syntax string
	omSyntax              int
	searchFlags           int // 904: confidential, never audited, RODC-filtered, kept on delete
	guid                  string
}

var lapsAttrs = []lapsAttr{
	{"ms-Mcs-AdmPwd", "ms-Mcs-AdmPwd", "1.2.840.113556.1.8000.2554.50051.45980.28112.18903.35903.6685103.1224907.2.1", "2.5.5.5", 19, 904, "2f4d0f1e-7a6b-4c59-8e21-0a1b2c3d4e01"},
	{"ms-Mcs-AdmPwdExpirationTime", "ms-Mcs-AdmPwdExpirationTime", "1.2.840.113556.1.8000.2554.50051.45980.28112.18903.35903.6685103.1224907.2.2", "2.5.5.16", 65, 0, "2f4d0f1e-7a6b-4c59-8e21-0a1b2c3d4e02"},
	{"ms-LAPS-PasswordExpirationTime", "msLAPS-PasswordExpirationTime", "1.2.840.113556.1.6.44.1.1", "2.5.5.16", 65, 0, "2f4d0f1e-7a6b-4c59-8e21-0a1b2c3d4e03"},
	{"ms-LAPS-Password", "msLAPS-Password", "1.2.840.113556.1.6.44.1.2", "2.5.5.12", 64, 904, "2f4d0f1e-7a6b-4c59-8e21-0a1b2c3d4e04"},
	{"ms-LAPS-EncryptedPassword", "msLAPS-EncryptedPassword", "1.2.840.113556.1.6.44.1.3", "2.5.5.10", 4, 904, "2f4d0f1e-7a6b-4c59-8e21-0a1b2c3d4e05"},
}

// guidBytes encodes an 8-4-4-4-12 GUID in its wire form.
func guidBytes(s string) []byte {
	h, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(h) != 16 {
		panic("testlab: bad GUID " + s) // the table above is constant
	}
	// The first three groups are little-endian on the wire.
	return []byte{h[3], h[2], h[1], h[0], h[5], h[4], h[7], h[6], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]}
}

// lapsInfo is what the LAPS template records for the labs that use it.
type lapsInfo struct {
	OU, Group, GroupSID string
}

func (d *DC) lapsOU() string { return "OU=LAPS Lab," + d.BaseDN }

// lapsTemplate derives from base a template with both LAPS schemas (an
// LDIF loaded offline with dsdb:schema update allowed), the LAPS OU, the
// "LAPS Readers" group, the two technicians (random passwords per
// template, kept root-only in the cache like the Administrator's), and
// inheritable ACEs on the OU that grant the group read and control access
// to the confidential attributes, as Windows LAPS's
// Set-LapsADReadPasswordPermission does.
func lapsTemplate(ctx context.Context, base string, d *DC) (string, time.Duration, error) {
	return derivedTemplate(ctx, base, "-laps1", d, func(ctx context.Context, t, tmp, conf string) error {
		schemaNC := "CN=Schema,CN=Configuration," + d.BaseDN
		var attrs, classMod strings.Builder
		classMod.WriteString("dn: CN=Computer," + schemaNC + "\nchangetype: modify\nadd: mayContain\n")
		for _, a := range lapsAttrs {
			fmt.Fprintf(&attrs, "dn: CN=%s,%s\nchangetype: add\nobjectClass: top\nobjectClass: attributeSchema\ncn: %s\nlDAPDisplayName: %s\nattributeID: %s\nattributeSyntax: %s\noMSyntax: %d\nisSingleValued: TRUE\nsearchFlags: %d\nschemaIDGUID:: %s\nshowInAdvancedViewOnly: TRUE\n\n",
				a.cn, schemaNC, a.cn, a.name, a.oid, a.syntax, a.omSyntax, a.searchFlags, base64.StdEncoding.EncodeToString(guidBytes(a.guid)))
			fmt.Fprintf(&classMod, "mayContain: %s\n", a.name)
		}
		classMod.WriteString("\n")
		readerPass, deniedPass := randomPassword(), randomPassword()
		ou := d.lapsOU()
		group := "CN=LAPS Readers," + ou
		var accounts strings.Builder
		fmt.Fprintf(&accounts, "dn: %s\nchangetype: add\nobjectClass: organizationalUnit\n\n", ou)
		fmt.Fprintf(&accounts, "dn: %s\nchangetype: add\nobjectClass: group\nsAMAccountName: LAPS Readers\ngroupType: -2147483646\n\n", group)
		for _, u := range []struct{ name, pass string }{{"lapsreader", readerPass}, {"lapsdenied", deniedPass}} {
			fmt.Fprintf(&accounts, "dn: CN=%s,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: %s\nuserAccountControl: 66048\nunicodePwd:: %s\n\n",
				u.name, ou, u.name, base64.StdEncoding.EncodeToString(winenc.EncodeUTF16LE(`"`+u.pass+`"`)))
		}
		fmt.Fprintf(&accounts, "dn: %s\nchangetype: modify\nadd: member\nmember: CN=lapsreader,%s\n\n", group, ou)
		for i, l := range []string{attrs.String(), classMod.String(), accounts.String()} {
			p := filepath.Join(tmp, fmt.Sprintf("laps%d.ldif", i))
			if err := os.WriteFile(p, []byte(l), 0o600); err != nil {
				return fmt.Errorf("testlab: %w", err)
			}
			if err := ldbModify(ctx, t, conf, p, "dsdb:schema update allowed=true"); err != nil {
				return redact(err, readerPass, deniedPass)
			}
		}
		out, err := run(ctx, nil, []string{"SMB_CONF_PATH=" + conf}, "ldbsearch", "-H", filepath.Join(t, "private", "sam.ldb"), "-b", group, "-s", "base", "objectSid")
		if err != nil {
			return err
		}
		m := regexp.MustCompile(`(?m)^objectSid: (S-1-5-21-[0-9-]+)$`).FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("testlab: no objectSid for %s: %s", group, out)
		}
		var sddl strings.Builder
		for _, a := range lapsAttrs {
			if a.searchFlags&0x80 != 0 {
				fmt.Fprintf(&sddl, "(OA;CI;RPCR;%s;;%s)", a.guid, m[1])
			}
		}
		if _, err := run(ctx, nil, nil, "samba-tool", "dsacl", "set", "-H", "tdb://"+filepath.Join(t, "private", "sam.ldb"), "-s", conf,
			"--objectdn="+ou, "--sddl="+sddl.String()); err != nil {
			return err
		}
		info, err := json.Marshal(lapsInfo{OU: ou, Group: group, GroupSID: m[1]})
		if err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		for name, v := range map[string][]byte{"laps.json": info, "lapsreader.pass": []byte(readerPass), "lapsdenied.pass": []byte(deniedPass)} {
			if err := os.WriteFile(filepath.Join(t, name), v, 0o600); err != nil {
				return fmt.Errorf("testlab: %w", err)
			}
		}
		return nil
	})
}

// redact removes secrets from a command error's output.
func redact(err error, secrets ...string) error {
	ce, ok := err.(*CommandError)
	if !ok {
		return err
	}
	for _, s := range secrets {
		ce.Output = strings.ReplaceAll(ce.Output, s, "[REDACTED]")
	}
	return ce
}

// loadLAPS fills d.LAPS from the template copy in d.dir.
func (d *DC) loadLAPS() error {
	b, err := os.ReadFile(filepath.Join(d.dir, "laps.json"))
	if err != nil {
		return fmt.Errorf("testlab: LAPS template: %w", err)
	}
	var info lapsInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return fmt.Errorf("testlab: LAPS template: %w", err)
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(d.dir, name))
		return strings.TrimSpace(string(b)), err
	}
	rp, err := read("lapsreader.pass")
	if err != nil {
		return fmt.Errorf("testlab: LAPS template: %w", err)
	}
	dp, err := read("lapsdenied.pass")
	if err != nil {
		return fmt.Errorf("testlab: LAPS template: %w", err)
	}
	d.LAPS = &LAPSLab{OU: info.OU, ReadersGroup: info.Group, ReadersSID: info.GroupSID,
		Reader: Account{User: "lapsreader", Password: rp}, Denied: Account{User: "lapsdenied", Password: dp}}
	return nil
}

// DialLDAP opens an LDAPS connection to the DC, verified against the lab
// CA, and binds as acct (a domain account: "user" binds as user@realm).
// The caller closes it.
func (d *DC) DialLDAP(ctx context.Context, acct Account) (*ldap.Conn, error) {
	ap := netip.AddrPortFrom(d.Addr, 636)
	c, err := ldap.DialURL("ldaps://"+ap.String(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: d.CAPool, ServerName: d.Hostname, MinVersion: tls.VersionTLS12}))
	if err != nil {
		return nil, fmt.Errorf("testlab: LDAPS %v: %w", ap, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetTimeout(time.Until(dl))
	}
	if err := c.Bind(acct.User+"@"+strings.ToLower(d.Realm), acct.Password); err != nil {
		c.Close()
		return nil, fmt.Errorf("testlab: bind as %s: %w", acct.User, err)
	}
	return c, nil
}

// SetLAPS creates (if needed) the computer object name in the LAPS OU
// and replaces the given LAPS attributes on it (attribute name to value;
// an empty value deletes the attribute), as the domain Administrator over
// LDAPS. It returns the object's DN. It needs DCSpec.LAPS.
func (d *DC) SetLAPS(ctx context.Context, name string, attrs map[string][]byte) (string, error) {
	if d.LAPS == nil {
		return "", fmt.Errorf("%w: SetLAPS needs DCSpec.LAPS", ErrBadOptions)
	}
	if !nameRE.MatchString(name) {
		return "", fmt.Errorf("%w: computer name %q", ErrBadOptions, name)
	}
	c, err := d.DialLDAP(ctx, d.Admin)
	if err != nil {
		return "", err
	}
	defer c.Close()
	dn := "CN=" + name + "," + d.LAPS.OU
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"computer"})
	add.Attribute("sAMAccountName", []string{strings.ToUpper(name) + "$"})
	add.Attribute("userAccountControl", []string{"4096"})
	add.Attribute("dNSHostName", []string{strings.ToLower(name) + "." + strings.ToLower(d.Realm)})
	if err := c.Add(add); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		return "", fmt.Errorf("testlab: add %s: %w", dn, err)
	}
	mod := ldap.NewModifyRequest(dn, nil)
	names := make([]string, 0, len(attrs))
	for a := range attrs {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		if len(attrs[a]) == 0 {
			mod.Replace(a, nil)
		} else {
			mod.Replace(a, []string{string(attrs[a])})
		}
	}
	if len(names) == 0 {
		return dn, nil
	}
	if err := c.Modify(mod); err != nil {
		// The values are secrets: name the attributes only.
		code := "unknown error"
		if e, ok := err.(*ldap.Error); ok {
			code = fmt.Sprintf("result %d (%s)", e.ResultCode, ldap.LDAPResultCodeMap[e.ResultCode])
		}
		return "", fmt.Errorf("testlab: set %v on %s: %s", names, dn, code)
	}
	return dn, nil
}
