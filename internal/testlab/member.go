package testlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// startMembers joins and starts the domain-member targets once the DC
// answers, and returns how many there are. A lab without members returns
// at once. The first lab with a given DC template and member names joins
// them for real and saves the result as a member template (the DC's
// database with the machine accounts and DNS records, and each member's
// secrets.tdb); later labs copy it and skip the join.
func (l *Lab) startMembers(ctx context.Context) (int, error) {
	var ms []*Target
	for _, t := range l.Targets {
		if t.Member {
			t.Workgroup = l.DC.Domain
			t.Realm = l.DC.Realm
			t.FQDN = strings.ToLower(t.NetBIOSName) + "." + strings.ToLower(l.DC.Realm)
			ms = append(ms, t)
		}
	}
	if len(ms) == 0 {
		return 0, nil
	}
	each := func(f func(t *Target) error) error {
		var wg sync.WaitGroup
		errs := make([]error, len(ms))
		for i, t := range ms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = f(t)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	if err := each(func(t *Target) error {
		if err := t.prepare(ctx); err != nil {
			return err
		}
		return t.joinDomain(ctx)
	}); err != nil {
		return len(ms), err
	}
	if l.memberTmpl == nil {
		if err := l.saveMemberTemplate(ctx, ms); err != nil {
			return len(ms), err
		}
	}
	return len(ms), each(func(t *Target) error {
		if err := t.startWinbind(ctx); err != nil {
			return err
		}
		if err := t.mapDomainAdmins(ctx); err != nil {
			return err
		}
		return t.startDaemons(ctx)
	})
}

// memberNames returns the NetBIOS names of the lab's domain members, in
// order.
func (l *Lab) memberNames() []string {
	var names []string
	for _, t := range l.Targets {
		if t.Member {
			names = append(names, t.NetBIOSName)
		}
	}
	return names
}

// memberTemplate is a DC template with members joined: dir/dc is the DC's
// directory, dir/NAME/secrets.tdb each member's machine secrets, and
// dir/members.json the members' template addresses and the DNS records
// that hold them.
type memberTemplate struct {
	dir     string
	Members map[string]memberRecords `json:"members"`
}

type memberRecords struct {
	Addr    string      `json:"addr"`
	Records []dnsObject `json:"records"`
}

func memberTemplatePath(base string, names []string) string {
	return base + "-m-" + strings.ToLower(strings.Join(names, "-"))
}

// loadMemberTemplate returns the cached member template for base and
// names, or nil.
func loadMemberTemplate(base string, names []string) *memberTemplate {
	if len(names) == 0 {
		return nil
	}
	dir := memberTemplatePath(base, names)
	if !useTemplate(dir) {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "members.json"))
	if err != nil {
		return nil
	}
	mt := &memberTemplate{dir: dir}
	if json.Unmarshal(b, mt) != nil {
		return nil
	}
	for _, n := range names {
		if _, ok := mt.Members[n]; !ok {
			return nil
		}
	}
	return mt
}

// saveMemberTemplate stops the DC (so that its databases are copied
// consistent), copies its directory and the members' secrets.tdb into a
// member template, and starts the DC again. It runs once per DC template
// and member names; a template that another lab made meanwhile is kept.
func (l *Lab) saveMemberTemplate(ctx context.Context, ms []*Target) error {
	d := l.DC
	final := memberTemplatePath(l.dcTmpl, l.memberNames())
	unlock, err := flockFile(ctx, final+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	if useTemplate(final) {
		return nil
	}
	t0 := time.Now()
	_ = d.proc.Stop()
	if err := killPids(netnsPids(ctx, d.Name), 3*time.Second); err != nil {
		return err
	}
	err = func() error {
		_ = os.RemoveAll(final)
		tmp, err := os.MkdirTemp(TemplateCacheDir, filepath.Base(final)+".tmp-")
		if err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		defer os.RemoveAll(tmp)
		t := filepath.Join(tmp, "t")
		if err := os.MkdirAll(t, 0o700); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		if _, err := run(ctx, nil, nil, "cp", "-a", d.dir, filepath.Join(t, "dc")); err != nil {
			return err
		}
		// The copy's DC records now hold this lab's DC address: so do
		// their stored values (writeAddressFix writes a node's whole value
		// set back, moved) and the address they are moved from.
		tr, old, err := readTemplateRecords(filepath.Join(t, "dc"))
		if err != nil {
			return err
		}
		tr.Records = moveRecords(tr.Records, old, d.Addr)
		tr.HostIP = d.Addr.String()
		b, err := json.Marshal(tr)
		if err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		if err := os.WriteFile(filepath.Join(t, "dc", "dnsrecords.json"), b, 0o600); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		_ = os.Remove(filepath.Join(t, "dc", "ready"))
		mt := memberTemplate{Members: map[string]memberRecords{}}
		for _, m := range ms {
			recs, err := dcAddressRecords(ctx, filepath.Join(d.dir, "private", "sam.ldb"), d.SMBConf, m.Addr)
			if err != nil {
				return err
			}
			mt.Members[m.NetBIOSName] = memberRecords{Addr: m.Addr.String(), Records: recs}
			if err := os.MkdirAll(filepath.Join(t, m.NetBIOSName), 0o700); err != nil {
				return fmt.Errorf("testlab: %w", err)
			}
			if _, err := run(ctx, nil, nil, "cp", "-a", filepath.Join(m.dir, "private", "secrets.tdb"), filepath.Join(t, m.NetBIOSName, "secrets.tdb")); err != nil {
				return err
			}
		}
		if b, err = json.Marshal(mt); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		if err := os.WriteFile(filepath.Join(t, "members.json"), b, 0o600); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		if err := os.WriteFile(filepath.Join(t, "ready"), []byte(filepath.Base(final)+"\n"), 0o644); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		return os.Rename(t, final)
	}()
	if serr := d.startSamba(ctx); serr != nil {
		return errors.Join(err, serr)
	}
	l.log.Info("member template saved", "template", final, "took", time.Since(t0))
	return err
}

// memberGlobals returns the [global] lines that make the target a member
// of the lab domain; config puts them after the standalone ones, and the
// later value of a parameter wins in smb.conf.
func (t *Target) memberGlobals() string {
	return fmt.Sprintf(`	server role = member server
	security = ads
	realm = %[1]s
	kerberos method = secrets only
	idmap config * : backend = tdb
	idmap config * : range = 3000-7999
	idmap config %[2]s : backend = rid
	idmap config %[2]s : range = 100000-199999
	winbind use default domain = no
	winbind offline logon = no
	machine password timeout = 0
	template shell = /usr/sbin/nologin
	client use spnego = yes
`, t.Realm, t.Workgroup)
}

// domainAdmins returns the extra entries of a member's `valid users` and
// `admin users`: the domain Administrator and Domain Admins. It is empty
// for a standalone target.
func (t *Target) domainAdmins() string {
	if !t.Member {
		return ""
	}
	return fmt.Sprintf(` "%[1]s\administrator" "@%[1]s\domain admins"`, t.Workgroup)
}

// privateRun returns the command line that runs argv in the target's
// namespace with its private /run/samba (see startPrivateRun).
func (t *Target) privateRun(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", t.Name, "sh", "-c", `mount --bind "$0" /run/samba && exec "$@"`, filepath.Join(t.dir, "run")}, argv...)
}

// joinDomain points the target's DNS at the DC and joins it: from the
// member template when there is one (its secrets.tdb), otherwise with `net
// ads join` as the domain Administrator (password in PASSWD, never on a
// command line) while NAME.<realm> is added to the DC's DNS.
func (t *Target) joinDomain(ctx context.Context) error {
	dc := t.lab.DC
	etc := filepath.Join("/etc/netns", t.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	resolv := fmt.Sprintf("search %s\nnameserver %s\n", strings.ToLower(dc.Realm), dc.Addr)
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte(resolv), 0o644); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	if mt := t.lab.memberTmpl; mt != nil {
		// Joined in the template: the DC has the machine account and the
		// A record (moved to this lab's address); the member gets its
		// machine secrets back.
		if _, err := run(ctx, nil, nil, "cp", "-a", filepath.Join(mt.dir, t.NetBIOSName, "secrets.tdb"), filepath.Join(t.dir, "private", "secrets.tdb")); err != nil {
			return err
		}
		return nil
	}
	// The A record (which clients find the member by) is added while the
	// join runs: the join takes the DNS name from dnshostname, not from
	// DNS, and each step costs seconds of samba-tool and net start-up.
	t0 := time.Now()
	jctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	dnsErr := make(chan error, 1)
	go func() { dnsErr <- dc.AddHostRecord(jctx, strings.ToLower(t.NetBIOSName), t.Addr) }()
	args := []string{"net", "ads", "join", "-s", t.SMBConf, "-U", dc.Admin.User, "-S", dc.Hostname,
		"--no-dns-updates", "dnshostname=" + t.FQDN}
	if dc.NoNTLM {
		args = append(args, "--use-kerberos=required")
	}
	env := []string{"PASSWD=" + dc.Admin.Password}
	_, joinErr := run(jctx, nil, env, t.privateRun(args...)...)
	if joinErr != nil {
		var ce *CommandError
		if errors.As(joinErr, &ce) {
			ce.Output = strings.ReplaceAll(ce.Output, dc.Admin.Password, "[REDACTED]")
			ce.Args = args
		}
		joinErr = fmt.Errorf("testlab: join %s to %s: %w", t.NetBIOSName, dc.Realm, joinErr)
	}
	if err := errors.Join(joinErr, <-dnsErr); err != nil {
		return err
	}
	t.lab.log.Info("member joined", "target", t.NetBIOSName, "fqdn", t.FQDN, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// mapDomainAdmins makes Domain Admins a member of the member's
// BUILTIN\Administrators, as joining a Windows computer does, so that the
// domain Administrator's token carries S-1-5-32-544 there (Samba's SCM
// grants SC_MANAGER_CREATE_SERVICE, and winreg writes, to that alias
// only). `net ads join` does it itself; a member started from the member
// template (which keeps only secrets.tdb) needs it done. It needs winbindd
// to name the group.
func (t *Target) mapDomainAdmins(ctx context.Context) error {
	out, err := run(ctx, nil, nil, t.privateRun("wbinfo", "-n", t.Workgroup+`\domain admins`)...)
	if err != nil {
		return fmt.Errorf("testlab: %s: SID of Domain Admins: %w", t.NetBIOSName, err)
	}
	sid, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	if !strings.HasPrefix(sid, "S-1-5-21-") {
		return fmt.Errorf("testlab: %s: SID of Domain Admins: %q", t.NetBIOSName, out)
	}
	if mem, err := run(ctx, nil, nil, t.privateRun("net", "-s", t.SMBConf, "groupmap", "listmem", "S-1-5-32-544")...); err == nil && strings.Contains(mem, sid) {
		return nil
	}
	if _, err := run(ctx, nil, nil, t.privateRun("net", "-s", t.SMBConf, "groupmap", "addmem", "S-1-5-32-544", sid)...); err != nil {
		return fmt.Errorf("testlab: %s: add Domain Admins to BUILTIN\\Administrators: %w", t.NetBIOSName, err)
	}
	return nil
}

// startWinbind starts the member's winbindd and waits until it reaches
// the DC; smbd needs it to map domain users.
func (t *Target) startWinbind(ctx context.Context) error {
	p, err := t.startPrivateRun(ctx, filepath.Join(t.dir, "run"), "winbindd", "-F", "--no-process-group", "-s", t.SMBConf)
	if err != nil {
		return err
	}
	t.lab.mu.Lock()
	t.winbindd = p
	t.lab.mu.Unlock()
	return t.waitWinbind(ctx, p)
}

// waitWinbind waits until winbindd answers and has reached the DC
// (wbinfo --ping-dc), or fails after a minute with what wbinfo said last.
func (t *Target) waitWinbind(ctx context.Context, p *Process) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	delay := 20 * time.Millisecond
	var last string
	for {
		out, err := run(ctx, nil, nil, t.privateRun("wbinfo", "--ping-dc")...)
		if err == nil {
			return nil
		}
		last = strings.TrimSpace(out)
		if p.Exited() {
			return &NotReadyError{What: "winbindd on " + t.NetBIOSName, Why: "exited: " + fmt.Sprint(p.Wait()), Log: p.logTail() + "\n" + fileTail(filepath.Join(t.dir, "log", "log.winbindd"), 15)}
		}
		select {
		case <-ctx.Done():
			return &NotReadyError{What: "winbindd on " + t.NetBIOSName, Why: "wbinfo --ping-dc: " + last, Log: fileTail(filepath.Join(t.dir, "log", "log.winbindd"), 15)}
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// SambaTool runs samba-tool with args in the DC's namespace on the DC's
// own database (its smb.conf), for example to disable a user or change
// the password policy, and returns its output. args must not contain
// secrets; use AddUser to create an account.
func (d *DC) SambaTool(ctx context.Context, args ...string) (string, error) {
	argv := append(append([]string{"samba-tool"}, args...), "-s", d.SMBConf)
	return run(ctx, nil, nil, append([]string{"ip", "netns", "exec", d.Name}, argv...)...)
}

// AddUser creates the domain user name with password (samba-tool user
// create, which takes the password only on its command line: use a
// random, lab-only password). Errors redact the password.
func (d *DC) AddUser(ctx context.Context, name, password string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: user name %q", ErrBadOptions, name)
	}
	_, err := d.SambaTool(ctx, "user", "create", name, password)
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			ce.Output = strings.ReplaceAll(ce.Output, password, "[REDACTED]")
			ce.Args = []string{"samba-tool", "user", "create", name, "[REDACTED]"}
		}
	}
	return err
}

// ExportKeytab writes the keys of a domain member's machine account to
// path under the service principal spn (for example host/FQDN), with
// samba-tool domain exportkeytab on the DC, so that a service running on
// the member's behalf (winemu) can accept Kerberos tickets for it. It
// fails with ErrBadOptions on a target that is not a member.
func (t *Target) ExportKeytab(ctx context.Context, spn, path string) error {
	if !t.Member {
		return fmt.Errorf("%w: %s is not a domain member", ErrBadOptions, t.NetBIOSName)
	}
	out, err := t.lab.DC.SambaTool(ctx, "domain", "exportkeytab", path, "--principal="+spn)
	if err != nil {
		return err
	}
	if fi, serr := os.Stat(path); serr != nil || fi.Size() == 0 {
		return fmt.Errorf("testlab: exportkeytab %s wrote nothing: %s", spn, strings.TrimSpace(out))
	}
	return nil
}
