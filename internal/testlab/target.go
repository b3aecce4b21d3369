package testlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// startTargets configures and starts every target, at most
// startParallel at a time, and waits until each answers.
func (l *Lab) startTargets(ctx context.Context) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, startParallel())
	errs := make([]error, len(l.Targets))
	for i, t := range l.Targets {
		if t.Member {
			continue // after the DC: startMembers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = fmt.Errorf("testlab: target %s: %w", t.NetBIOSName, ctx.Err())
				return
			}
			defer func() { <-sem }()
			errs[i] = t.setup(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startParallel is how many targets start at once: twice the CPUs, at
// least 4. Starting a target is a few short Samba commands (net,
// smbpasswd) and two daemons that each use CPU as they start, so more at
// once on a small machine only adds contention: 64 at once on 2 CPUs
// (under a load of about 20 from other work) made short commands that
// had exited miss run's WaitDelay, which failed the lab's start.
func startParallel() int { return max(4, 2*runtime.NumCPU()) }

func (t *Target) setup(ctx context.Context) error {
	if err := t.prepare(ctx); err != nil {
		return err
	}
	return t.startDaemons(ctx)
}

// prepare writes the target's directories, smb.conf and password
// database; it starts nothing.
func (t *Target) prepare(ctx context.Context) error {
	for _, d := range []string{"private", "state", "lock", "cache", "pid", "ncalrpc", "log", "run", "C/Windows/Temp", "C/Windows/System32", "C/Users/Public"} {
		if err := os.MkdirAll(filepath.Join(t.dir, d), 0o755); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
	}
	_ = os.Chmod(filepath.Join(t.dir, "private"), 0o700)
	t.CDir = filepath.Join(t.dir, "C")
	t.AdminDir = filepath.Join(t.CDir, "Windows")
	t.SMBConf = filepath.Join(t.dir, "smb.conf")
	if err := os.WriteFile(t.SMBConf, []byte(t.config()), 0o644); err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	// BUILTIN\Administrators for the admin group, so the NT token of the
	// admin carries S-1-5-32-544 (registry and SCM checks need it).
	if _, err := run(ctx, nil, nil, "net", "-s", t.SMBConf, "groupmap", "add", "sid=S-1-5-32-544", "unixgroup="+t.adminGrp, "type=builtin"); err != nil {
		return err
	}
	if t.Variant != GuestOnly {
		for _, a := range []Account{t.Admin, t.User} {
			in := []byte(a.Password + "\n" + a.Password + "\n")
			if _, err := run(ctx, in, nil, "smbpasswd", "-c", t.SMBConf, "-s", "-a", a.User); err != nil {
				return err
			}
		}
	}
	return nil
}

// startDaemons starts smbd and nmbd (unless NoSMB or NoNmbd) and waits
// until they answer.
func (t *Target) startDaemons(ctx context.Context) error {
	if !t.NoSMB {
		if err := t.startSMB(ctx); err != nil {
			return err
		}
	}
	if !t.NoNmbd {
		p, err := t.startPrivateRun(ctx, filepath.Join(t.dir, "run"), "nmbd", "-F", "--no-process-group", "-s", t.SMBConf)
		if err != nil {
			return err
		}
		t.nmbd = p
		if err := waitNBSTAT(ctx, p, t.Addr, "nmbd on "+t.NetBIOSName); err != nil {
			return err
		}
	}
	return nil
}

// config returns the target's smb.conf: every path under its directory,
// bound to its lab address only.
func (t *Target) config() string {
	d := t.dir
	var b strings.Builder
	fmt.Fprintf(&b, `# lanconnect lab target %[1]s (%[2]s), generated
[global]
	server role = standalone server
	netbios name = %[1]s
	workgroup = %[3]s
	server string = lanconnect lab target
	interfaces = %[4]s/24
	bind interfaces only = yes
	private dir = %[5]s/private
	state directory = %[5]s/state
	lock directory = %[5]s/lock
	cache directory = %[5]s/cache
	pid directory = %[5]s/pid
	ncalrpc dir = %[5]s/ncalrpc
	log file = %[5]s/log/log.%%m
	max log size = 1000
	logging = file
	log level = 1 auth_audit:3
	passdb backend = tdbsam
	security = user
	dns proxy = no
	load printers = no
	printing = bsd
	printcap name = /dev/null
	disable spoolss = yes
	usershare path =
	obey pam restrictions = no
	unix password sync = no
	panic action =
`, t.NetBIOSName, t.Addr, t.Workgroup, t.Addr, d)
	if t.Member {
		b.WriteString(t.memberGlobals())
	}
	if t.ResidentRPC {
		b.WriteString("\trpc start on demand helpers = no\n\trpc server dynamic port range = 61000-61999\n")
	}
	switch t.Variant {
	case GuestOnly:
		b.WriteString("\tmap to guest = Bad Password\n\tguest account = nobody\n")
	case SigningMandatory:
		b.WriteString("\tserver signing = mandatory\n")
	case EncryptRequired:
		b.WriteString("\tserver smb encrypt = required\n")
	case NTLMDisabled:
		b.WriteString("\tntlm auth = disabled\n")
	case MaxSMB300:
		b.WriteString("\tserver max protocol = SMB3_00\n")
	case MaxSMB210:
		b.WriteString("\tserver max protocol = SMB2_10\n")
	case SMB139Only:
		b.WriteString("\tsmb ports = 139\n")
	}
	// Windows starts any file; on a lab target winemu needs the execute bit
	// to start what was copied, so files written to the admin shares get it.
	for _, s := range []struct{ name, path, comment string }{
		{"ADMIN$", t.AdminDir, "Remote Admin"},
		{"C$", t.CDir, "Default share"},
	} {
		fmt.Fprintf(&b, `
[%s]
	comment = %s
	path = %s
	read only = no
	browseable = no
	valid users = @%s%s
	admin users = @%s%s
	force create mode = 0755
`, s.name, s.comment, s.path, t.adminGrp, t.domainAdmins(), t.adminGrp, t.domainAdmins())
	}
	return b.String()
}

// FailedLogons returns the failed authentications that smbd logged (its
// auth_audit lines with a status other than NT_STATUS_OK), across all of
// the target's log files, in no particular order. The lab logs every
// authentication (auth_audit:3), so the count is what the target saw,
// not what the client believes it sent.
func (t *Target) FailedLogons() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(t.dir, "log", "log.*"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "Auth: [") && strings.Contains(l, "status [NT_STATUS_") && !strings.Contains(l, "status [NT_STATUS_OK]") {
				out = append(out, strings.TrimSpace(l))
			}
		}
	}
	return out, nil
}

func (t *Target) startSMB(ctx context.Context) error {
	if t.ResidentRPC {
		if err := t.startDCERPCD(ctx); err != nil {
			return err
		}
	}
	p, err := t.startPrivateRun(ctx, filepath.Join(t.dir, "run"), "smbd", "-F", "--no-process-group", "-s", t.SMBConf)
	if err != nil {
		return err
	}
	t.lab.mu.Lock()
	t.smbd = p
	t.lab.mu.Unlock()
	return waitTCP(ctx, p, netip.AddrPortFrom(t.Addr, t.SMBPort()), "smbd on "+t.NetBIOSName)
}

// residentHelpers are the rpcd_* helpers a ResidentRPC target's
// samba-dcerpcd serves: every one Samba installs but the endpoint mapper
// (TCP 135 stays a test's), the print spooler, Spotlight and the VSS
// agent, which no lab client uses.
var residentHelpers = []string{"rpcd_classic", "rpcd_lsad", "rpcd_winreg"}

// startDCERPCD starts the ResidentRPC target's samba-dcerpcd in the
// foreground of its namespace and waits until its svcctl and winreg pipes
// accept connections (Samba puts them in the ncalrpc directory's np
// folder, where smbd connects to them).
func (t *Target) startDCERPCD(ctx context.Context) error {
	bin, err := exec.LookPath("samba-dcerpcd")
	if err != nil {
		// Debian keeps it, and the helpers, in Samba's libexec folder.
		bin = "/usr/libexec/samba/samba-dcerpcd"
	}
	argv := []string{bin, "-F", "--no-process-group", "-s", t.SMBConf}
	for _, h := range residentHelpers {
		argv = append(argv, filepath.Join(filepath.Dir(bin), h))
	}
	p, err := t.startPrivateRun(ctx, filepath.Join(t.dir, "run"), argv...)
	if err != nil {
		return err
	}
	t.lab.mu.Lock()
	t.dcerpcd = p
	t.lab.mu.Unlock()
	for _, pipe := range []string{"svcctl", "winreg"} {
		if err := waitUnix(ctx, p, filepath.Join(t.dir, "ncalrpc", "np", pipe), "samba-dcerpcd's "+pipe+" on "+t.NetBIOSName); err != nil {
			return err
		}
	}
	return nil
}

// SMBPort returns the TCP port the target's smbd listens on: 139 for the
// SMB139Only variant, else 445 (smbd also serves 139 there, as Windows
// does).
func (t *Target) SMBPort() uint16 {
	if t.Variant == SMB139Only {
		return 139
	}
	return 445
}

// StopSMB kills the target's smbd and every samba-dcerpcd and rpcd_*
// helper in its namespace now (SIGTERM, then SIGKILL), for example to
// break a copy midway. nmbd and other processes in the namespace keep
// running.
func (t *Target) StopSMB() error {
	if t.NoSMB {
		return ErrNoSMB
	}
	err := t.stopDaemon(&t.smbd, func(c string) bool {
		return strings.HasPrefix(c, "smbd") || c == "samba-dcerpcd" || strings.HasPrefix(c, "rpcd_")
	})
	t.lab.mu.Lock()
	p := t.dcerpcd // a ResidentRPC target's, killed above by its name
	t.dcerpcd = nil
	t.lab.mu.Unlock()
	if p != nil {
		_ = p.Stop()
	}
	return err
}

// StopNmbd kills the target's nmbd now, so that it stops answering the
// NetBIOS name service (a computer switched off mid-scan); smbd keeps
// running. Close still tears down as usual. There is no StartNmbd.
func (t *Target) StopNmbd() error {
	if t.NoNmbd {
		return ErrNoNmbd
	}
	return t.stopDaemon(&t.nmbd, func(c string) bool { return c == "nmbd" })
}

// stopDaemon kills the tracked process *pp and every process in the
// target's namespace whose command name matches (SIGTERM, then SIGKILL),
// and forgets *pp.
func (t *Target) stopDaemon(pp **Process, match func(comm string) bool) error {
	t.lab.mu.Lock()
	p := *pp
	*pp = nil
	t.lab.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var pids []int
	if p != nil {
		pids = append(pids, p.Pid())
	}
	for _, pid := range netnsPids(ctx, t.Name) {
		if match(procComm(pid)) {
			pids = append(pids, pid)
		}
	}
	err := killPids(dedup(pids), 2*time.Second)
	if p != nil {
		_ = p.Stop()
	}
	return err
}

// StartSMB starts smbd again after StopSMB and waits until TCP 445 answers.
func (t *Target) StartSMB() error {
	if t.NoSMB {
		return ErrNoSMB
	}
	t.lab.mu.Lock()
	running := t.smbd != nil && !t.smbd.Exited()
	t.lab.mu.Unlock()
	if running {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return t.startSMB(ctx)
}

// waitTCP waits until ap accepts a TCP connection, p exits or ctx ends. A
// daemon's readiness has no event to wait on from outside, so it retries
// the connection with a short back-off.
func waitTCP(ctx context.Context, p *Process, ap netip.AddrPort, what string) error {
	return waitDial(ctx, p, "tcp", ap.String(), what)
}

// waitUnix waits until the Unix socket at path accepts a connection, as
// waitTCP does for a TCP port.
func waitUnix(ctx context.Context, p *Process, path, what string) error {
	return waitDial(ctx, p, "unix", path, what)
}

// waitDial is waitTCP and waitUnix: it dials network/address until a
// connection is made, p exits, or a minute has passed.
func waitDial(ctx context.Context, p *Process, network, address, what string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	delay := 10 * time.Millisecond
	for {
		var d net.Dialer
		dctx, dcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		c, err := d.DialContext(dctx, network, address)
		dcancel()
		if err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.Exited() {
			return &NotReadyError{What: what, Why: "exited: " + fmt.Sprint(p.Wait()), Log: p.logTail()}
		}
		select {
		case <-ctx.Done():
			return &NotReadyError{What: what, Why: fmt.Sprintf("no %s answer on %v: %v", strings.ToUpper(network), address, err), Log: p.logTail()}
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// nbstatQuery is an NBNS node status request for "*" (RFC 1002 4.2.17).
func nbstatQuery(id uint16) []byte {
	b := make([]byte, 12, 50)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	name := [16]byte{'*'}
	b = append(b, 32)
	for _, c := range name {
		b = append(b, 'A'+c>>4, 'A'+c&0x0f)
	}
	b = append(b, 0, 0x00, 0x21, 0x00, 0x01) // end of name, NBSTAT, IN
	return b
}

// waitNBSTAT waits until addr answers a node status request on UDP 137.
func waitNBSTAT(ctx context.Context, p *Process, addr netip.Addr, what string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return fmt.Errorf("testlab: %w", err)
	}
	defer conn.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 137))
	buf := make([]byte, 1500)
	for id := uint16(1); ; id++ {
		if _, err := conn.WriteToUDP(nbstatQuery(id), dst); err != nil {
			return fmt.Errorf("testlab: %w", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if from.Addr().Unmap() == addr && n >= 12 && binary.BigEndian.Uint16(buf) == id && buf[2]&0x80 != 0 {
				return nil
			}
		}
		if p != nil && p.Exited() {
			return &NotReadyError{What: what, Why: "exited: " + fmt.Sprint(p.Wait()), Log: p.logTail()}
		}
		if ctx.Err() != nil {
			return &NotReadyError{What: what, Why: "no NBSTAT answer on " + addr.String() + ":137", Log: p.logTail()}
		}
	}
}
