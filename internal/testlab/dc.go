package testlab

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// labCodeVersion is part of the DC template key: bump it whenever the way
// templates are provisioned changes, so stale templates are not reused.
const labCodeVersion = "dc-template-2"

// TemplateCacheDir holds provisioned DC templates, one directory per key
// (Samba version, lab code version, realm, domain), each guarded by an
// flock while it is provisioned.
const TemplateCacheDir = "/var/cache/lanconnect-lab"

func realmBaseDN(realm string) string {
	parts := strings.Split(strings.ToLower(realm), ".")
	for i, p := range parts {
		parts[i] = "DC=" + p
	}
	return strings.Join(parts, ",")
}

// templateKey returns the cache key of a DC template.
func templateKey(ctx context.Context, realm, domain string) (string, error) {
	ver, err := run(ctx, nil, nil, "smbd", "--version")
	if err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(strings.Join([]string{strings.TrimSpace(ver), labCodeVersion, realm, domain, DCNetBIOSName}, "\n")))
	return hex.EncodeToString(h[:8]), nil
}

// dcTemplate returns the directory of a provisioned template for realm and
// domain, provisioning one (inside the DC's namespace n, so it sees only
// lab interfaces) if none is cached. It reports how long provisioning took
// (zero when cached).
func dcTemplate(ctx context.Context, n *Netns, realm, domain string) (string, time.Duration, error) {
	key, err := templateKey(ctx, realm, domain)
	if err != nil {
		return "", 0, err
	}
	if err := os.MkdirAll(TemplateCacheDir, 0o700); err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	pruneTemplates()
	final := filepath.Join(TemplateCacheDir, "dc-"+key)
	if useTemplate(final) {
		return final, 0, nil
	}
	unlock, err := flockFile(ctx, final+".lock")
	if err != nil {
		return "", 0, err
	}
	defer unlock()
	if useTemplate(final) {
		return final, 0, nil // another process provisioned it meanwhile
	}
	t0 := time.Now()
	_ = os.RemoveAll(final)
	tmp, err := os.MkdirTemp(TemplateCacheDir, "dc-"+key+".tmp-")
	if err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	defer os.RemoveAll(tmp)
	empty := filepath.Join(tmp, "empty.conf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	pass := randomPassword()
	target := filepath.Join(tmp, "t")
	// samba-tool takes the password only on its command line, so it is
	// random per template, never logged (errors redact it) and kept
	// root-only in the cache.
	args := []string{"samba-tool", "domain", "provision", "--use-rfc2307", "--server-role=dc",
		"--dns-backend=SAMBA_INTERNAL", "--realm=" + realm, "--domain=" + domain,
		"--host-name=" + DCNetBIOSName, "--host-ip=" + n.Addr.String(),
		"--adminpass=" + pass, "-s", empty, "--targetdir=" + target}
	cmd := n.Command(ctx, args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		o := strings.TrimSpace(string(out))
		o = strings.ReplaceAll(o, pass, "[REDACTED]")
		if len(o) > 2000 {
			o = "..." + o[len(o)-2000:]
		}
		return "", 0, &CommandError{Args: []string{"samba-tool", "domain", "provision", "--realm=" + realm, "--domain=" + domain, "(...)"}, Output: o, Err: err}
	}
	conf := filepath.Join(target, "etc", "smb.conf")
	if _, err := run(ctx, nil, nil, "samba-tool", "domain", "passwordsettings", "set", "--max-pwd-age=0",
		"-H", "tdb://"+filepath.Join(target, "private", "sam.ldb"), "-s", conf); err != nil {
		return "", 0, err
	}
	// The DNS records of the DC's own address, to rewrite for each lab.
	recs, err := dcAddressRecords(ctx, filepath.Join(target, "private", "sam.ldb"), conf, n.Addr)
	if err != nil {
		return "", 0, err
	}
	tr := templateRecords{HostIP: n.Addr.String(), Records: recs}
	b, err := json.Marshal(tr)
	if err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	if err := os.WriteFile(filepath.Join(target, "dnsrecords.json"), b, 0o600); err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	if err := os.WriteFile(filepath.Join(target, "adminpass"), []byte(pass), 0o600); err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	if err := os.WriteFile(filepath.Join(target, "ready"), []byte(key+"\n"), 0o644); err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	if err := os.Rename(target, final); err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	return final, time.Since(t0), nil
}

// computersTemplate returns a template derived from base with n computers
// bulk-loaded (by ldbmodify, OUs first), creating and caching it if
// needed, and fills d.Computers. The computers depend only on the realm
// and n, so the template serves every lab. It reports how long loading
// took (zero when cached).
func computersTemplate(ctx context.Context, base string, d *DC, n int) (string, time.Duration, error) {
	var ldif strings.Builder
	d.writeComputers(&ldif, n)
	return derivedTemplate(ctx, base, fmt.Sprintf("-c%d", n), d, func(ctx context.Context, t, tmp, conf string) error {
		ldifPath := filepath.Join(tmp, "computers.ldif")
		if err := os.WriteFile(ldifPath, []byte(ldif.String()), 0o600); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		return ldbModify(ctx, t, conf, ldifPath)
	})
}

// ldbModify applies an LDIF file to the template t's sam.ldb offline,
// with the extra smb.conf options given ("name=value").
func ldbModify(ctx context.Context, t, conf, ldifPath string, options ...string) error {
	args := []string{"ldbmodify", "--nosync", "-H", filepath.Join(t, "private", "sam.ldb")}
	for _, o := range options {
		args = append(args, "--option="+o)
	}
	_, err := run(ctx, nil, []string{"SMB_CONF_PATH=" + conf}, append(args, ldifPath)...)
	return err
}

// derivedTemplate returns the template base+suffix: a copy of base that
// apply changed offline (t is the copy, tmp a scratch directory, conf
// the copy's smb.conf), creating and caching it if needed under an
// flock. It reports how long creating took (zero when cached).
func derivedTemplate(ctx context.Context, base, suffix string, d *DC, apply func(ctx context.Context, t, tmp, conf string) error) (string, time.Duration, error) {
	final := base + suffix
	if useTemplate(final) {
		return final, 0, nil
	}
	unlock, err := flockFile(ctx, final+".lock")
	if err != nil {
		return "", 0, err
	}
	defer unlock()
	if useTemplate(final) {
		return final, 0, nil
	}
	t0 := time.Now()
	_ = os.RemoveAll(final)
	tmp, err := os.MkdirTemp(TemplateCacheDir, filepath.Base(final)+".tmp-")
	if err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	defer os.RemoveAll(tmp)
	t := filepath.Join(tmp, "t")
	if _, err := run(ctx, nil, nil, "cp", "-a", base, t); err != nil {
		return "", 0, err
	}
	_ = os.Remove(filepath.Join(t, "ready"))
	conf := filepath.Join(t, "etc", "smb.conf")
	if err := os.WriteFile(conf, []byte(d.config(t, nil)), 0o644); err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	if err := apply(ctx, t, tmp, conf); err != nil {
		return "", 0, err
	}
	if err := os.WriteFile(filepath.Join(t, "ready"), []byte(filepath.Base(final)+"\n"), 0o644); err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	if err := os.Rename(t, final); err != nil {
		return "", 0, fmt.Errorf("testlab: %w", err)
	}
	return final, time.Since(t0), nil
}

// templateMaxIdle is how long a cached template may go unused before
// pruneTemplates removes it.
const templateMaxIdle = 3 * 24 * time.Hour

// useTemplate reports whether the template dir is complete, and marks it
// used (the mtime of its ready file) for pruneTemplates.
func useTemplate(dir string) bool {
	ready := filepath.Join(dir, "ready")
	if _, err := os.Stat(ready); err != nil {
		return false
	}
	now := time.Now()
	_ = os.Chtimes(ready, now, now)
	return true
}

// pruneTemplates removes cached templates unused for templateMaxIdle, and
// leftovers of interrupted provisioning, skipping any whose lock is held.
func pruneTemplates() {
	ents, err := os.ReadDir(TemplateCacheDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "dc-") {
			continue
		}
		p := filepath.Join(TemplateCacheDir, name)
		if i := strings.Index(name, ".tmp-"); i >= 0 {
			// A leftover of a killed provisioning run, unless that run is
			// still going (it holds the lock of its template).
			if unlock, ok := tryLock(filepath.Join(TemplateCacheDir, name[:i]) + ".lock"); ok {
				_ = os.RemoveAll(p)
				unlock()
			}
			continue
		}
		fi, err := os.Stat(filepath.Join(p, "ready"))
		if err == nil && time.Since(fi.ModTime()) < templateMaxIdle {
			continue
		}
		if err != nil && time.Since(dirTime(p)) < time.Hour {
			continue // being created, or just failed
		}
		if unlock, ok := tryLock(p + ".lock"); ok {
			_ = os.RemoveAll(p)
			_ = os.Remove(p + ".lock")
			unlock()
		}
	}
}

func dirTime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// startDC copies the cached template, writes the lab's config and TLS
// files, bulk-loads the computers and starts samba in the DC namespace.
func (l *Lab) startDC(ctx context.Context, spec *DCSpec) error {
	d := l.DC
	d.Realm = strings.ToUpper(spec.Realm)
	d.Domain = strings.ToUpper(spec.Domain)
	if d.Realm == "" {
		d.Realm = DefaultRealm
	}
	if d.Domain == "" {
		if spec.Realm == "" {
			d.Domain = DefaultDomain
		} else {
			d.Domain = strings.SplitN(d.Realm, ".", 2)[0]
			if len(d.Domain) > 15 {
				d.Domain = d.Domain[:15]
			}
		}
	}
	d.BaseDN = realmBaseDN(d.Realm)
	d.Hostname = strings.ToLower(DCNetBIOSName) + "." + strings.ToLower(d.Realm)
	d.ComputersOU = "OU=LanConnect Lab," + d.BaseDN
	d.dir = filepath.Join(l.Dir, "dc")
	d.NoNTLM, d.ClockSkew = spec.NoNTLM, spec.ClockSkew

	// resolv.conf for everything run in the namespace: the DC itself.
	etc := filepath.Join("/etc/netns", d.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	// While provisioning, nothing answers DNS in the namespace: point it
	// at its own loopback, so lookups fail at once instead of timing out
	// (or leaving the lab).
	resolvPath := filepath.Join(etc, "resolv.conf")
	if err := os.WriteFile(resolvPath, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	tmpl, prov, err := dcTemplate(ctx, &d.Netns, d.Realm, d.Domain)
	if err != nil {
		return err
	}
	resolv := fmt.Sprintf("search %s\nnameserver %s\n", strings.ToLower(d.Realm), d.Addr)
	if err := os.WriteFile(resolvPath, []byte(resolv), 0o644); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	if l.Client != nil {
		// The client is a domain member's view of DNS: short names are
		// looked up in the realm, as on a Windows LAN.
		if err := os.WriteFile(filepath.Join("/etc/netns", l.Client.Name, "resolv.conf"), []byte(resolv), 0o644); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
	}
	l.timings.Provision = prov
	if spec.Computers > 0 {
		var dur time.Duration
		tmpl, dur, err = computersTemplate(ctx, tmpl, d, spec.Computers)
		if err != nil {
			return err
		}
		l.timings.Computers = dur
	} else {
		d.Computers = []Computer{}
	}
	if spec.LAPS {
		var dur time.Duration
		tmpl, dur, err = lapsTemplate(ctx, tmpl, d)
		if err != nil {
			return err
		}
		l.timings.LAPS = dur
	}
	// Domain members joined once into a template of their own (with this
	// DC template as its base) skip the join.
	l.dcTmpl = tmpl
	l.memberTmpl = loadMemberTemplate(tmpl, l.memberNames())
	if l.memberTmpl != nil {
		tmpl = filepath.Join(l.memberTmpl.dir, "dc")
	}
	if _, err := run(ctx, nil, nil, "cp", "-a", tmpl, d.dir); err != nil {
		return err
	}
	if spec.LAPS {
		if err := d.loadLAPS(); err != nil {
			return err
		}
	}
	pass, err := os.ReadFile(filepath.Join(d.dir, "adminpass"))
	if err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	d.Admin = Account{User: "Administrator", Password: strings.TrimSpace(string(pass))}
	for _, s := range []string{"run", "pid", "ncalrpc", "log", "cache"} {
		if err := os.MkdirAll(filepath.Join(d.dir, s), 0o755); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
	}
	ca, err := newLabCA(filepath.Join(d.dir, "labtls"), "lanconnect "+l.ID,
		[]string{d.Hostname, strings.ToLower(DCNetBIOSName), strings.ToLower(d.Realm)}, d.Addr)
	if err != nil {
		return err
	}
	d.CAFile, d.CAPool = ca.CAFile, ca.Pool
	d.SMBConf = filepath.Join(d.dir, "etc", "smb.conf")
	if err := os.WriteFile(d.SMBConf, []byte(d.config(d.dir, ca)), 0o644); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	// The DNS records of the template's address move to this lab's.
	tr, from, err := readTemplateRecords(d.dir)
	if err != nil {
		return err
	}
	var ldif strings.Builder
	writeAddressFix(&ldif, tr.Records, from, d.Addr)
	if mt := l.memberTmpl; mt != nil {
		for _, t := range l.Targets {
			if m, ok := mt.Members[t.NetBIOSName]; t.Member && ok {
				if a, err := netip.ParseAddr(m.Addr); err == nil {
					writeAddressFix(&ldif, m.Records, a, t.Addr)
				}
			}
		}
	}
	ldifPath := filepath.Join(d.dir, "address.ldif")
	if err := os.WriteFile(ldifPath, []byte(ldif.String()), 0o600); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	if _, err := run(ctx, nil, []string{"SMB_CONF_PATH=" + d.SMBConf}, "ldbmodify", "--nosync", "-H", filepath.Join(d.dir, "private", "sam.ldb"), ldifPath); err != nil {
		return err
	}
	return d.startSamba(ctx)
}

// startSamba starts samba in the DC's namespace and waits until LDAPS and
// SMB answer.
func (d *DC) startSamba(ctx context.Context) error {
	// A private /run/samba (smbd finds winbindd only there) in the mount
	// namespace that `ip netns exec` creates for the command.
	argv := []string{"samba", "-F", "--no-process-group", "-M", "single", "-s", d.SMBConf}
	if d.ClockSkew != 0 {
		// libfaketime's relative offset, in whole seconds.
		argv = append([]string{"faketime", "-f", fmt.Sprintf("%+d", int64(d.ClockSkew/time.Second))}, argv...)
	}
	p, err := d.startPrivateRun(ctx, filepath.Join(d.dir, "run"), argv...)
	if err != nil {
		return err
	}
	d.proc = p
	if err := waitLDAPS(ctx, p, d); err != nil {
		return err
	}
	// samba starts its smbd after the LDAP server: a DC is ready when
	// both answer, as a Windows DC's would.
	return waitTCP(ctx, p, netip.AddrPortFrom(d.Addr, 445), "smbd of the samba AD DC")
}

// AddHostRecord adds a DNS A record host.<realm> -> addr to the DC's DNS
// (samba-tool dns add, as the domain Administrator, whose password goes
// in the PASSWD environment variable, never on a command line). It
// returns when the DC has stored it.
func (d *DC) AddHostRecord(ctx context.Context, host string, addr netip.Addr) error {
	if !nameRE.MatchString(host) || !addr.Is4() {
		return fmt.Errorf("%w: DNS record %q -> %v", ErrBadOptions, host, addr)
	}
	args := []string{"dns", "add", d.Addr.String(), strings.ToLower(d.Realm), strings.ToLower(host), "A", addr.String(), "-U", d.Admin.User, "-s", d.SMBConf}
	if d.NoNTLM {
		// Kerberos needs the server's name for its SPN.
		args[2] = d.Hostname
		args = append(args, "--use-kerberos=required")
	}
	cmd := d.Command(ctx, "samba-tool", args...)
	cmd.Env = append(os.Environ(), "PASSWD="+d.Admin.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		return &CommandError{Args: append([]string{"samba-tool"}, args...), Output: strings.ReplaceAll(strings.TrimSpace(string(out)), d.Admin.Password, "[REDACTED]"), Err: err}
	}
	return nil
}

// config returns the DC's smb.conf for this lab: template paths replaced by
// the lab's copy, bound to its lab address, with the lab's TLS files.
func (d *DC) config(dir string, ca *labCA) string {
	tlsLines := "\ttls enabled = no\n"
	if ca != nil {
		tlsLines = fmt.Sprintf("\ttls enabled = yes\n\ttls keyfile = %s\n\ttls certfile = %s\n\ttls cafile = %s\n", ca.KeyFile, ca.CertFile, ca.CAFile)
	}
	if d.NoNTLM {
		tlsLines += "\tntlm auth = disabled\n"
	}
	return fmt.Sprintf(`# lanconnect lab DC %[1]s, generated
[global]
	netbios name = %[2]s
	realm = %[3]s
	workgroup = %[4]s
	server role = active directory domain controller
	idmap_ldb:use rfc2307 = yes
	interfaces = %[5]s/24
	bind interfaces only = yes
	private dir = %[6]s/private
	state directory = %[6]s/state
	lock directory = %[6]s
	cache directory = %[6]s/cache
	binddns dir = %[6]s/bind-dns
	pid directory = %[6]s/pid
	ncalrpc dir = %[6]s/ncalrpc
	log file = %[6]s/log/log.%%m
	logging = file
	log level = 1
	max log size = 1000
	panic action =
%[7]s	ldap server require strong auth = allow_sasl_over_tls

[sysvol]
	path = %[6]s/state/sysvol
	read only = no

[netlogon]
	path = %[6]s/state/sysvol/%[8]s/scripts
	read only = no
`, d.Hostname, DCNetBIOSName, d.Realm, d.Domain, d.Addr, dir, tlsLines, strings.ToLower(d.Realm))
}

// The computers' OUs (relative to DC.ComputersOU), in creation order, with
// their name prefixes and operating systems.
var computerOUs = []struct {
	rdn, prefix string
	oses        [][2]string
}{
	{"OU=Workstations", "WS", [][2]string{{"Windows 11 Pro", "10.0 (22631)"}, {"Windows 10 Pro", "10.0 (19045)"}, {"Windows 11 Enterprise", "10.0 (26100)"}}},
	{"OU=Finance,OU=Workstations", "FIN", [][2]string{{"Windows 10 Enterprise", "10.0 (19045)"}, {"Windows 11 Enterprise", "10.0 (22631)"}}},
	{"OU=Laptops", "LT", [][2]string{{"Windows 11 Pro", "10.0 (26100)"}, {"Windows 10 Pro", "10.0 (19044)"}}},
	{"OU=Servers", "SRV", [][2]string{{"Windows Server 2022 Standard", "10.0 (20348)"}, {"Windows Server 2019 Datacenter", "10.0 (17763)"}, {"Windows Server 2025 Standard", "10.0 (26100)"}}},
	{"OU=Kiosks", "KIO", [][2]string{{"Windows 10 Enterprise LTSC", "10.0 (17763)"}}},
}

// writeComputers appends to b the LDIF that adds n computer objects, OUs
// first, and records them in d.Computers. Every 20th computer is disabled.
func (d *DC) writeComputers(b *strings.Builder, n int) {
	d.Computers = make([]Computer, 0, n)
	if n == 0 {
		return
	}
	ous := []string{d.ComputersOU}
	for _, o := range computerOUs {
		ous = append(ous, o.rdn+","+d.ComputersOU)
	}
	for _, ou := range ous {
		fmt.Fprintf(b, "dn: %s\nchangetype: add\nobjectClass: organizationalUnit\n\n", ou)
	}
	realm := strings.ToLower(d.Realm)
	for i := range n {
		o := computerOUs[i%len(computerOUs)]
		os := o.oses[(i/len(computerOUs))%len(o.oses)]
		name := fmt.Sprintf("%s%05d", o.prefix, i)
		c := Computer{
			Name:      name,
			OU:        o.rdn + "," + d.ComputersOU,
			DNSName:   strings.ToLower(name) + "." + realm,
			OS:        os[0],
			OSVersion: os[1],
			Enabled:   i%20 != 7,
		}
		c.DN = "CN=" + name + "," + c.OU
		uac := 4096 // WORKSTATION_TRUST_ACCOUNT
		if !c.Enabled {
			uac |= 2 // ACCOUNTDISABLE
		}
		fmt.Fprintf(b, "dn: %s\nchangetype: add\nobjectClass: computer\nsAMAccountName: %s$\nuserAccountControl: %d\ndNSHostName: %s\noperatingSystem: %s\noperatingSystemVersion: %s\n\n",
			c.DN, name, uac, c.DNSName, c.OS, c.OSVersion)
		d.Computers = append(d.Computers, c)
	}
}

// templateRecords are the DNS records of a template that hold its DC's
// address (HostIP).
type templateRecords struct {
	HostIP  string      `json:"host_ip"`
	Records []dnsObject `json:"records"`
}

// dnsObject is one DNS node with all its dnsRecord values (raw
// DNS_RPC_RECORD blobs, MS-DNSP 2.2.2.2.5).
type dnsObject struct {
	DN     string   `json:"dn"`
	Values [][]byte `json:"values"`
}

// aRecordAddr returns the address of an A record blob.
func aRecordAddr(v []byte) (netip.Addr, bool) {
	// wDataLength, wType (LE), version, rank, flags, serial, TTL,
	// reserved, timestamp: 24 bytes, then the data.
	if len(v) != 28 || binary.LittleEndian.Uint16(v[0:]) != 4 || binary.LittleEndian.Uint16(v[2:]) != 1 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(v[24:28])), true
}

// dcAddressRecords returns the DNS nodes in every partition of sam.ldb that
// have an A record for addr.
func dcAddressRecords(ctx context.Context, samLdb, conf string, addr netip.Addr) ([]dnsObject, error) {
	out, err := run(ctx, nil, []string{"SMB_CONF_PATH=" + conf}, "ldbsearch", "-H", samLdb, "--cross-ncs", "(dnsRecord=*)", "dnsRecord")
	if err != nil {
		return nil, err
	}
	var objs []dnsObject
	var cur *dnsObject
	// Unfold LDIF continuation lines first.
	text := strings.ReplaceAll(out, "\n ", "")
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "dn: "):
			objs = append(objs, dnsObject{DN: line[4:]})
			cur = &objs[len(objs)-1]
		case strings.HasPrefix(line, "dnsRecord:: ") && cur != nil:
			v, err := base64.StdEncoding.DecodeString(line[len("dnsRecord:: "):])
			if err != nil {
				return nil, fmt.Errorf("testlab: dnsRecord of %s: %w", cur.DN, err)
			}
			cur.Values = append(cur.Values, v)
		}
	}
	var keep []dnsObject
	for _, o := range objs {
		for _, v := range o.Values {
			if a, ok := aRecordAddr(v); ok && a == addr {
				keep = append(keep, o)
				break
			}
		}
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("testlab: no DNS record of %v in the provisioned DC", addr)
	}
	return keep, nil
}

// writeAddressFix appends LDIF that replaces, in recs, every A record of
// from with one of to.
func writeAddressFix(b *strings.Builder, recs []dnsObject, from, to netip.Addr) {
	for _, o := range moveRecords(recs, from, to) {
		fmt.Fprintf(b, "dn: %s\nchangetype: modify\nreplace: dnsRecord\n", o.DN)
		for _, v := range o.Values {
			fmt.Fprintf(b, "dnsRecord:: %s\n", base64.StdEncoding.EncodeToString(v))
		}
		b.WriteString("-\n\n")
	}
}

// moveRecords returns a copy of recs in which every A record of from
// holds to instead.
func moveRecords(recs []dnsObject, from, to netip.Addr) []dnsObject {
	out := make([]dnsObject, len(recs))
	for i, o := range recs {
		out[i] = dnsObject{DN: o.DN, Values: make([][]byte, len(o.Values))}
		for j, v := range o.Values {
			if a, ok := aRecordAddr(v); ok && a == from {
				v = append([]byte(nil), v...)
				t := to.As4()
				copy(v[24:], t[:])
			}
			out[i].Values[j] = v
		}
	}
	return out
}

// readTemplateRecords reads the dnsrecords.json of a DC directory: the
// DNS nodes that hold the DC's address, and that address.
func readTemplateRecords(dir string) (templateRecords, netip.Addr, error) {
	var tr templateRecords
	b, err := os.ReadFile(filepath.Join(dir, "dnsrecords.json"))
	if err == nil {
		err = json.Unmarshal(b, &tr)
	}
	if err != nil {
		return tr, netip.Addr{}, fmt.Errorf("testlab: DC template records: %w", err)
	}
	a, err := netip.ParseAddr(tr.HostIP)
	if err != nil {
		return tr, netip.Addr{}, fmt.Errorf("testlab: DC template records: %w", err)
	}
	return tr, a, nil
}

// waitLDAPS waits until the DC completes a TLS handshake on 636 that
// verifies against the lab CA for its hostname.
func waitLDAPS(ctx context.Context, p *Process, d *DC) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ap := netip.AddrPortFrom(d.Addr, 636)
	cfg := &tls.Config{RootCAs: d.CAPool, ServerName: d.Hostname, MinVersion: tls.VersionTLS12}
	delay := 20 * time.Millisecond
	var last error
	for {
		dl := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
		hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := dl.DialContext(hctx, "tcp", ap.String())
		hcancel()
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return &NotReadyError{What: "samba AD DC", Why: "LDAPS certificate does not verify: " + err.Error()}
		}
		if p.Exited() {
			return &NotReadyError{What: "samba AD DC", Why: "exited: " + fmt.Sprint(p.Wait()), Log: p.logTail() + "\n" + fileTail(filepath.Join(d.dir, "log", "log.samba"), 15)}
		}
		select {
		case <-ctx.Done():
			return &NotReadyError{What: "samba AD DC", Why: fmt.Sprintf("no LDAPS handshake on %v: %v", ap, last), Log: fileTail(filepath.Join(d.dir, "log", "log.samba"), 15)}
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}
