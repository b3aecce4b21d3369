package testlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// startMembers joins and starts the domain-member targets, in parallel,
// once the DC answers, and returns how many there are. A lab without
// members returns at once.
func (l *Lab) startMembers(ctx context.Context) (int, error) {
	n := 0
	var wg sync.WaitGroup
	errs := make([]error, len(l.Targets))
	for i, t := range l.Targets {
		if !t.Member {
			continue
		}
		t.Workgroup = l.DC.Domain
		t.Realm = l.DC.Realm
		t.FQDN = strings.ToLower(t.NetBIOSName) + "." + strings.ToLower(l.DC.Realm)
		n++
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = t.setup(ctx)
		}()
	}
	wg.Wait()
	return n, errors.Join(errs...)
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

// joinDomain points the target's DNS at the DC, joins it with `net ads
// join` as the domain Administrator (password in PASSWD, never on a
// command line), registers NAME.<realm> in the DC's DNS, and starts
// winbindd, waiting until it reaches the DC. smbd starts after it.
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
	tJoin := time.Since(t0)
	if err := errors.Join(joinErr, <-dnsErr); err != nil {
		return err
	}
	tDNS := time.Since(t0)
	p, err := t.startPrivateRun(ctx, filepath.Join(t.dir, "run"), "winbindd", "-F", "--no-process-group", "-s", t.SMBConf)
	if err != nil {
		return err
	}
	t.lab.mu.Lock()
	t.winbindd = p
	t.lab.mu.Unlock()
	if err := t.waitWinbind(ctx, p); err != nil {
		return err
	}
	t.lab.log.Info("member joined", "target", t.NetBIOSName, "fqdn", t.FQDN, "join", tJoin.Round(time.Millisecond), "join+dns", tDNS.Round(time.Millisecond), "winbind ready", time.Since(t0).Round(time.Millisecond))
	return nil
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
