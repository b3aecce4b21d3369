package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// DefaultCheckDialTimeout bounds each TCP reachability probe of Check.
const DefaultCheckDialTimeout = 3 * time.Second

// CheckStatus is the verdict on one item of a CheckReport.
type CheckStatus string

// The verdicts of a check item.
const (
	// CheckOK: the item is as a Connect needs it.
	CheckOK CheckStatus = "ok"
	// CheckWarn: a Connect may work, but the item is worth fixing (a
	// Diagnosis says why).
	CheckWarn CheckStatus = "warn"
	// CheckFail: the item stops a Connect, or this way of reaching the
	// target; the Diagnosis is the one a Connect would give.
	CheckFail CheckStatus = "fail"
	// CheckUnknown: the item could not be learned without changing the
	// target, or an earlier item failed; Value says why.
	CheckUnknown CheckStatus = "unknown"
)

// CheckItem is one item of a CheckReport.
type CheckItem struct {
	Status CheckStatus
	// Value is what was found, in the words of docs/connect.md: "open",
	// "refused", "filtered" for a port; "classic" or "guest-only" for the
	// sharing model; "running" for Remote Registry; "scm", "wmi" or
	// "none" for the launch method; or why the item is unknown.
	Value string
	// Diagnosis explains a CheckFail or CheckWarn item: the diagnosis a
	// Connect would give for the same cause. Zero otherwise.
	Diagnosis diag.Diagnosis
}

// CheckReport answers "why can't I connect to this host?" without
// changing anything on it (Client.Check): one item per thing a Connect
// needs, and whether a Connect would get as far as launching the applet.
type CheckReport struct {
	// Host is the host as given; Name is its name for display and Addr
	// the address checked (empty when it could not be resolved).
	Host discovery.Host
	Name string
	Addr string
	// Account is the account that was tried; Auth how it logged on
	// ("kerberos" or "ntlm"), empty when it did not.
	Account string
	Auth    string
	// TCP135, TCP139 and TCP445 are the reachability of the endpoint
	// mapper (WMI), the NetBIOS session service and SMB: "open",
	// "refused" (the computer answered with a reset), "filtered" (no
	// answer within the dial timeout) or "unreachable" (no route).
	TCP135, TCP139, TCP445 CheckItem
	// SMB is the SMB session: Value is the dialect; Transport says what
	// carried it ("tcp445" or "nbt139"), Signed and Encrypted its
	// protection.
	SMB       CheckItem
	Dialect   string
	Transport string
	Signed    bool
	Encrypted bool
	// Credentials: whether the computer accepted the credentials.
	Credentials CheckItem
	// Admin: whether the account is administrator there, proved without
	// writing (ADMIN$ opened for FILE_ADD_FILE, the SCM opened with
	// SC_MANAGER_CREATE_SERVICE).
	Admin CheckItem
	// SharingModel: "guest-only" (every network logon becomes Guest) or
	// "classic".
	SharingModel CheckItem
	// NTLMLevel: LmCompatibilityLevel (0-5) when Remote Registry runs;
	// "refused" when the computer refuses NTLM.
	NTLMLevel CheckItem
	// UAC: UAC remote restrictions for local accounts:
	// "LocalAccountTokenFilterPolicy=N", or "not applicable" for an
	// account they do not restrict.
	UAC CheckItem
	// RemoteRegistry: the Remote Registry service's state ("running",
	// "stopped", "disabled"); the registry values above are read only
	// when it is already running.
	RemoteRegistry CheckItem
	// WMI: WMI reachability (endpoint mapper, activation, then the bind
	// on the dynamic port WMIPort); Value "reachable".
	WMI     CheckItem
	WMIPort int
	// Launch is the launch method a Connect would use: Value is the
	// launcher's name, or "none" with the diagnosis a Connect would end
	// with.
	Launch CheckItem
	// Ready reports that a Connect would reach the launch with a
	// launcher that the check found working: the credentials are valid
	// and administrator, and Launch is CheckOK.
	Ready bool
	// Diagnosis is why Ready is false (the first failure a Connect would
	// meet); zero when Ready.
	Diagnosis diag.Diagnosis
	// Took is how long the check took.
	Took time.Duration
}

// Items returns the report's items with their names as connect -check
// prints them (and as its NDJSON fields are named), in order.
func (r *CheckReport) Items() []NamedCheckItem {
	return []NamedCheckItem{
		{"tcp135", r.TCP135}, {"tcp139", r.TCP139}, {"tcp445", r.TCP445},
		{"smb", r.SMB}, {"credentials", r.Credentials}, {"admin", r.Admin},
		{"sharing_model", r.SharingModel}, {"ntlm_level", r.NTLMLevel}, {"uac", r.UAC},
		{"remote_registry", r.RemoteRegistry}, {"wmi", r.WMI}, {"launch", r.Launch},
	}
}

// NamedCheckItem is a CheckItem with its name (CheckReport.Items).
type NamedCheckItem struct {
	Name string
	Item CheckItem
}

// Check answers "why can't I connect to host?" without changing anything
// on it: no file, service, registry value or service state. It resolves
// the host as Connect does, probes TCP 135, 139 and 445, logs on with the
// Client's current credentials under the Config's Authenticator with
// adauth.WithReadOnly (administrator proved without writing), under the
// Client's lockout guard and with the prompt as Connect would, then asks
// every launcher that implements deploy.Checker, in order, and applies
// Config.Fallback to their failures as Connect would to its attempts.
// Every failing item carries the diagnosis a Connect would give for the
// same cause.
//
// It does not run Config.Preflight (which may start Remote Registry),
// copy, launch or journal anything, does not call Config.Authorize, and
// does not check a launcher that does not implement deploy.Checker (the
// Launch item is then CheckUnknown when it would be tried). It needs a
// Config with an Authenticator; without one, or after Client.Close, every
// item is unknown and Launch fails with the reason. It returns when done
// or when ctx ends; the report is never nil.
func (c *Client) Check(ctx context.Context, host discovery.Host) *CheckReport {
	s := c.newSession(host, "check")
	s.checking = true
	r := s.check(ctx)
	r.ports()
	r.Took = time.Since(s.begun)
	return r
}

func unknown(why string) CheckItem { return CheckItem{Status: CheckUnknown, Value: why} }

// noLaunch is the Launch item of a check that ends before any launcher
// would work: no method, and the diagnosis a Connect would end with.
func noLaunch(d diag.Diagnosis) CheckItem {
	return CheckItem{Status: CheckFail, Value: "none", Diagnosis: d}
}

// check runs Client.Check's steps.
func (s *Session) check(ctx context.Context) *CheckReport {
	cfg := &s.c.cfg
	r := &CheckReport{Host: s.host, Name: s.name}
	notLoggedOn := unknown("needs an administrator logon")
	for _, it := range []*CheckItem{&r.TCP135, &r.TCP139, &r.TCP445, &r.SMB, &r.Credentials, &r.Admin,
		&r.SharingModel, &r.NTLMLevel, &r.UAC, &r.RemoteRegistry, &r.WMI, &r.Launch} {
		*it = notLoggedOn
	}
	fail := func(d diag.Diagnosis) *CheckReport {
		r.Diagnosis = d
		r.Launch = noLaunch(d)
		return r
	}
	s.c.mu.Lock()
	closed := s.c.closed
	s.c.mu.Unlock()
	if closed {
		return fail(s.explain(StepAuthenticate, s.closedErr(), nil))
	}
	if s.addr == "" {
		return fail(s.explain(StepAuthenticate, s.noAddressErr(), nil))
	}
	if cfg.Authenticator == nil {
		return fail(s.explain(StepAuthenticate, &Error{Name: s.name, Step: StepAuthenticate, Kind: ErrBadConfig,
			Err: errors.New("Config.Authenticator is required")}, nil))
	}
	if err := s.resolve(ctx); err != nil {
		for _, it := range []*CheckItem{&r.TCP135, &r.TCP139, &r.TCP445} {
			*it = unknown("no address")
		}
		return fail(s.explain(StepAuthenticate, err, nil))
	}
	r.Addr = s.currentAddr()
	r.TCP135, r.TCP139, r.TCP445 = probePorts(ctx, r.Addr)

	// Authentication, read-only, as Connect does it.
	if n := expectedName(s.host); n != "" {
		ctx = adauth.WithExpectedName(ctx, n)
	}
	if n := s.host.DNSName; n != "" && !isAddrLiteral(n) {
		ctx = adauth.WithDNSName(ctx, n)
	}
	actx, cancel := withTimeout(adauth.WithReadOnly(ctx), s.tmo.Authenticate)
	current := s.c.Credentials()
	r.Account = current.Account()
	grant, _, err := s.authenticate(actx, s.c.guard.Wrap(&addrAuth{s: s, a: cfg.Authenticator}), current, cfg.Prompt)
	cancel()
	r.Addr = s.currentAddr()
	if err != nil {
		s.authFailed(r, err)
		return r
	}
	defer grant.Close()
	s.target.Grant = grant
	f := grant.Facts
	r.Account, r.Auth = grant.Credentials.Account(), f.Auth
	r.setSMB(&f)
	r.Credentials = CheckItem{Status: CheckOK, Value: "valid"}
	r.Admin = CheckItem{Status: CheckOK, Value: "administrator"}
	r.SharingModel = CheckItem{Status: CheckOK, Value: "classic"}
	if f.Auth == adauth.MethodKerberos {
		r.NTLMLevel = unknown("not used (kerberos)")
	} else {
		r.NTLMLevel = unknown("not read")
	}
	r.UAC = CheckItem{Status: CheckOK, Value: "not applicable"}
	if f.LocalAccount && !f.BuiltinAdministrator {
		r.UAC = CheckItem{Status: CheckOK, Value: "administrator rights kept over the network"}
	}
	r.RemoteRegistry = unknown("not checked (no launcher reads it)")
	r.WMI = unknown("not checked (the WMI launcher is not configured)")

	s.checkLaunchers(ctx, r)
	r.Ready = r.Launch.Status == CheckOK
	if !r.Ready && r.Diagnosis.IsZero() {
		r.Diagnosis = r.Launch.Diagnosis
	}
	return r
}

// ports gives each closed port the diagnosis of what needed it: 445 and
// 139 the SMB failure's (when neither carried SMB), 135 WMI's. A closed
// port that nothing needed (SMB went over the other port, WMI was not
// needed or reached) is CheckWarn without a diagnosis.
func (r *CheckReport) ports() {
	for _, p := range []struct {
		it   *CheckItem
		need CheckItem
	}{{&r.TCP445, r.SMB}, {&r.TCP139, r.SMB}, {&r.TCP135, r.WMI}} {
		if p.it.Status != CheckFail {
			continue
		}
		if p.need.Status == CheckFail {
			p.it.Diagnosis = p.need.Diagnosis
			continue
		}
		p.it.Status = CheckWarn
	}
}

// setSMB fills the SMB items from the facts of a logon.
func (r *CheckReport) setSMB(f *adauth.Facts) {
	r.Dialect, r.Transport, r.Signed, r.Encrypted = f.Dialect, f.Transport, f.Signed, f.Encrypted
	r.SMB = CheckItem{Status: CheckOK, Value: f.Dialect}
}

// authFailed fills the report from a failed logon: the item the failure
// is about carries the diagnosis Connect would give.
func (s *Session) authFailed(r *CheckReport, err error) {
	d := s.explain(StepAuthenticate, err, nil)
	r.Diagnosis = d
	r.Launch = noLaunch(d)
	failed := CheckItem{Status: CheckFail, Diagnosis: d}
	var ae *adauth.AuthError
	if !errors.As(err, &ae) {
		r.Credentials = failed
		r.Credentials.Value = "not proved"
		return
	}
	if ae.Facts != nil {
		r.setSMB(ae.Facts)
		if ae.Facts.Auth != "" {
			r.Auth = ae.Facts.Auth
		}
	}
	switch {
	case errors.Is(ae, adauth.ErrGuest):
		r.Credentials = unknown("logged on as Guest")
		r.SharingModel = failed
		r.SharingModel.Value = "guest-only"
	case errors.Is(ae, adauth.ErrNTLMBlocked):
		r.Credentials = unknown("NTLM refused")
		r.NTLMLevel = failed
		r.NTLMLevel.Value = "refused"
	case ae.Step == adauth.StepConnect:
		r.SMB = failed
		if errors.Is(ae, adauth.ErrUnreachable) {
			r.SMB.Value = "unreachable"
		} else {
			r.SMB.Value = "failed"
		}
		r.Credentials = unknown("not tried")
	case ae.Step == adauth.StepAccount || ae.Step == adauth.StepAdminShare || ae.Step == adauth.StepSCM:
		r.Credentials = CheckItem{Status: CheckOK, Value: "valid"}
		r.SharingModel = CheckItem{Status: CheckOK, Value: "classic"}
		r.Admin = failed
		r.Admin.Value = "not administrator"
		if errors.Is(ae, adauth.ErrNoAdminShare) {
			r.Admin.Value = "no ADMIN$ share"
		}
		if d.Code == diag.UACRemote {
			r.UAC = failed
			r.UAC.Value = "local account restricted"
		}
	default:
		r.Credentials = failed
		r.Credentials.Value = "refused"
	}
}

// checkLaunchers asks each launcher that implements deploy.Checker, in
// order, and decides the launch method as Connect's launch step would.
func (s *Session) checkLaunchers(ctx context.Context, r *CheckReport) {
	cfg := &s.c.cfg
	if len(cfg.Launchers) == 0 {
		d := diag.Diagnosis{Code: diag.NoLauncher, Summary: "No launch method is available in this console.", Fix: "Configure a launcher (SCM or WMI)."}
		r.Launch = noLaunch(d)
		return
	}
	type outcome struct {
		name    string
		checked bool
		err     error
		took    time.Duration
	}
	var outs []outcome
	for _, l := range cfg.Launchers {
		o := outcome{name: l.Name()}
		ch, ok := l.(deploy.Checker)
		if !ok {
			outs = append(outs, o)
			continue
		}
		o.checked = true
		t0 := time.Now()
		lctx, cancel := withTimeout(ctx, s.tmo.Launch)
		p, err := ch.Check(lctx, &s.target)
		timedOut := errors.Is(lctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		o.took = time.Since(t0)
		// As Connect marks an attempt that ran out of time.
		err = asTimeout(l.Name(), "launch", timedOut, err)
		o.err = err
		s.probed(r, p)
		if l.Name() == "wmi" && p != nil {
			r.WMIPort = p.Port
		}
		outs = append(outs, o)
	}
	for _, o := range outs {
		if o.name != "wmi" || !o.checked {
			continue
		}
		r.WMI = CheckItem{Status: CheckOK, Value: "reachable"}
		if o.err != nil {
			s.mu.Lock()
			pre := s.res.Preflight
			s.mu.Unlock()
			r.WMI = CheckItem{Status: CheckFail, Value: "unreachable", Diagnosis: s.explain(StepLaunch, o.err, pre)}
		}
	}
	// The diagnoses, with what the probes learned (as a Connect's
	// preflight would have told it), then Connect's fallback rule.
	for _, o := range outs {
		if !o.checked {
			r.Launch = CheckItem{Status: CheckUnknown, Value: o.name + " (cannot be checked without launching)"}
			return
		}
		if o.err == nil {
			r.Launch = CheckItem{Status: CheckOK, Value: o.name}
			return
		}
		a := Attempt{Launcher: o.name, Err: o.err, Diagnosis: s.diagnose(StepLaunch, o.err), Took: o.took}
		if o.name == "scm" && errors.Is(o.err, deploy.ErrAccessDenied) {
			r.Admin = CheckItem{Status: CheckFail, Value: "not administrator", Diagnosis: a.Diagnosis}
		}
		s.attemptFailed(a)
		next, ferr := s.fallback(ctx, a)
		if ferr != nil {
			d := s.diagnose(StepLaunch, &Error{Name: s.name, Step: StepLaunch, Err: ferr})
			r.Launch = noLaunch(d)
			return
		}
		if !next {
			// As Connect's Failed event explains it: after the attempt,
			// with the launch history.
			r.Launch = noLaunch(s.diagnose(StepLaunch, o.err))
			return
		}
	}
	// Every launcher failed, each a reason to try the next.
	err := &Error{Name: s.name, Step: StepLaunch, Kind: ErrLaunchFailed, Err: outs[len(outs)-1].err}
	r.Launch = noLaunch(s.diagnose(StepLaunch, err))
}

// probed records what a launcher's probe learned: the Remote Registry
// state and the registry values, which the later diagnoses use as a
// Connect's uses its preflight.
func (s *Session) probed(r *CheckReport, p *deploy.Probe) {
	if p == nil {
		return
	}
	g := s.target.Grant
	local := g != nil && g.Facts.LocalAccount
	if p.RemoteRegistry != "" {
		r.RemoteRegistry = CheckItem{Status: CheckOK, Value: p.RemoteRegistry}
		if p.RemoteRegistry != deploy.ServiceRunning && r.Auth != adauth.MethodKerberos {
			r.NTLMLevel = unknown("unknown, Remote Registry " + p.RemoteRegistry)
		}
		if p.RemoteRegistry != deploy.ServiceRunning && local {
			r.UAC.Value += "; LocalAccountTokenFilterPolicy unknown, Remote Registry " + p.RemoteRegistry
		}
	}
	set := p.Settings
	if set == nil {
		return
	}
	s.mu.Lock()
	s.res.Preflight = set
	s.mu.Unlock()
	notes := preflightNotes(set, local)
	noteOf := func(code diag.Code) diag.Diagnosis {
		for _, n := range notes {
			if n.Code == code {
				return n
			}
		}
		return diag.Diagnosis{}
	}
	if v := set.ForceGuest; v != nil {
		r.SharingModel = CheckItem{Status: CheckOK, Value: "classic"}
		if *v == 1 {
			r.SharingModel = CheckItem{Status: CheckOK, Value: "guest-only"}
			if d := noteOf(diag.GuestOnly); !d.IsZero() {
				r.SharingModel = CheckItem{Status: CheckWarn, Value: "guest-only", Diagnosis: d}
			}
		}
	}
	if v := set.LmCompatibilityLevel; v != nil {
		r.NTLMLevel = CheckItem{Status: CheckOK, Value: strconv.FormatUint(uint64(*v), 10)}
		if d := noteOf(diag.NTLMLevelLow); !d.IsZero() {
			r.NTLMLevel = CheckItem{Status: CheckWarn, Value: r.NTLMLevel.Value, Diagnosis: d}
		}
	} else if r.NTLMLevel.Status == CheckUnknown && r.Auth != adauth.MethodKerberos {
		r.NTLMLevel = unknown("not set (the system default)")
	}
	if v := set.LocalAccountTokenFilterPolicy; v != nil {
		r.UAC.Value = fmt.Sprintf("LocalAccountTokenFilterPolicy=%d", *v)
	} else if local {
		r.UAC.Value = "LocalAccountTokenFilterPolicy not set"
	}
}

// probePorts dials TCP 135, 139 and 445 of addr at once and returns
// their items.
func probePorts(ctx context.Context, addr string) (tcp135, tcp139, tcp445 CheckItem) {
	var wg sync.WaitGroup
	wg.Go(func() { tcp135 = probePort(ctx, addr, 135) })
	wg.Go(func() { tcp139 = probePort(ctx, addr, 139) })
	wg.Go(func() { tcp445 = probePort(ctx, addr, 445) })
	wg.Wait()
	return tcp135, tcp139, tcp445
}

// probePort dials addr:port once, within DefaultCheckDialTimeout, and
// closes the connection at once without sending anything. A reset is
// "refused", no answer "filtered".
func probePort(ctx context.Context, addr string, port int) CheckItem {
	dctx, cancel := context.WithTimeout(ctx, DefaultCheckDialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err == nil {
		_ = conn.Close()
		return CheckItem{Status: CheckOK, Value: "open"}
	}
	if ctx.Err() != nil {
		return unknown("canceled")
	}
	switch smbconn.ClassifyDial(addr, err).Reason {
	case smbconn.DialRefused:
		return CheckItem{Status: CheckFail, Value: "refused"}
	case smbconn.DialTimeout:
		// No answer within the timeout: a firewall that drops.
		return CheckItem{Status: CheckFail, Value: "filtered"}
	}
	return CheckItem{Status: CheckFail, Value: "unreachable"}
}
