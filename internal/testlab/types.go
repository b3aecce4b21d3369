package testlab

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Account is a user name and password of a lab account.
//
// Its String method never shows the password, so an Account may be logged.
// The password itself is random per lab; take it from the lab object, never
// from a constant.
type Account struct {
	User     string
	Password string
}

// String returns the user name followed by a redacted password. It never
// returns the password.
func (a Account) String() string {
	if a.Password == "" {
		return a.User
	}
	return a.User + ":[REDACTED]"
}

// GoString is like String, so %#v does not print the password either.
func (a Account) GoString() string {
	return fmt.Sprintf("testlab.Account{User:%q, Password:[REDACTED]}", a.User)
}

// Variant selects how a target deviates from a standard Windows-like
// server. The zero value is Standard.
type Variant string

// The target variants. Each one is a single smb.conf setting on the target;
// see TargetSpec.
const (
	// Standard is a target that accepts NTLMv2 logons of its accounts,
	// offers signing and does not require encryption.
	Standard Variant = ""
	// GuestOnly maps every logon to the guest account (map to guest = Bad
	// Password, and the lab accounts are not in the target's password
	// database), like Windows' "guest only" sharing model: sessions carry
	// SESSION_FLAG_IS_GUEST, whatever the credentials.
	GuestOnly Variant = "guest-only"
	// SigningMandatory sets server signing = mandatory.
	SigningMandatory Variant = "signing-mandatory"
	// EncryptRequired sets server smb encrypt = required.
	EncryptRequired Variant = "encrypt-required"
	// NTLMDisabled sets ntlm auth = disabled: NTLM logons fail with
	// STATUS_NTLM_BLOCKED.
	NTLMDisabled Variant = "ntlm-disabled"
	// MaxSMB300 sets server max protocol = SMB3_00: the target speaks SMB
	// 3.0 at most, the dialect whose negotiation a client validates with
	// FSCTL_VALIDATE_NEGOTIATE_INFO.
	MaxSMB300 Variant = "max-smb3-00"
	// MaxSMB210 sets server max protocol = SMB2_10: a target that can
	// neither encrypt nor protect its negotiation.
	MaxSMB210 Variant = "max-smb2-10"
	// SMB139Only sets smb ports = 139: TCP 445 is closed and SMB2/3 is
	// served only through the NetBIOS session service on TCP 139 (a
	// network that filters 445 but leaves 139 open).
	SMB139Only Variant = "smb-139-only"
)

// Valid reports whether v is one of the defined variants.
func (v Variant) Valid() bool {
	switch v {
	case Standard, GuestOnly, SigningMandatory, EncryptRequired, NTLMDisabled, MaxSMB300, MaxSMB210, SMB139Only:
		return true
	}
	return false
}

// String returns the variant's name, "standard" for the zero value.
func (v Variant) String() string {
	if v == Standard {
		return "standard"
	}
	return string(v)
}

// TargetSpec describes one Windows-like target (smbd and nmbd in a network
// namespace of their own). The zero value is a standard target with a
// generated NetBIOS name.
type TargetSpec struct {
	// Name is the NetBIOS name (at most 15 characters of letters, digits
	// and hyphens). Empty means generated from the lab ID.
	Name string
	// Variant selects a deviation from a standard target.
	Variant Variant
	// NoSMB runs nmbd only, so TCP 445 is closed (the "firewall" case).
	NoSMB bool
	// NoNmbd runs smbd only, so the target does not answer NetBIOS.
	NoNmbd bool
	// Bare runs neither smbd nor nmbd: the namespace has its address on
	// the bridge and nothing listens, for a test's own server started
	// with Target.Start (a rogue host answering for another's name, for
	// instance). Its accounts exist but serve nothing.
	Bare bool
	// DomainMember joins the target to the lab DC's domain (it needs
	// Options.DC): `security = ads`, joined with `net ads join`, winbindd
	// running, and an A record NAME.<realm> in the DC's DNS, so it accepts
	// Kerberos on SMB for cifs/Target.FQDN. It starts after the DC, which
	// adds a few seconds (Timings.Members); labs without members do not
	// pay for it. Combine it with Variant NTLMDisabled for a member that
	// refuses every NTLM logon. The domain Administrator (DC.Admin) is an
	// administrator of its ADMIN$ and C$; its local accounts stay as on
	// any target.
	DomainMember bool
	// ResidentRPC runs samba-dcerpcd as a daemon of its own, started
	// before smbd, instead of on demand from smbd: the RPC services
	// (svcctl, winreg, lsarpc, srvsvc) are up before the first client,
	// as a Windows computer's are, and samba-dcerpcd does not exit when
	// idle (on demand, it and its rpcd_* helpers exit after about a
	// minute without clients and are spawned again, at several hundred
	// ms of CPU, by the next pipe open). Its helpers still exit when idle
	// and are started again by samba-dcerpcd, which is cheap. The
	// endpoint mapper (rpcd_epmapper) is not run, so TCP 135 stays free
	// for a test's own server (winemu); the other helpers listen on
	// ncacn_ip_tcp in 61000-61999 too. Benchmarks of many targets use it;
	// a Windows computer with Remote Registry stopped is not modelled by
	// it.
	ResidentRPC bool
}

// DCSpec describes the lab's Samba AD domain controller. The zero value is
// a DC with the default realm and domain and no extra computers.
type DCSpec struct {
	// Realm is the DNS realm. Empty means DefaultRealm, whose provisioned
	// template is cached; any other realm is provisioned (about 10 s) once
	// and cached too.
	Realm string
	// Domain is the NetBIOS domain name. Empty means DefaultDomain, or the
	// realm's first label when Realm is set.
	Domain string
	// Computers is the number of computer objects bulk-loaded with ldbadd,
	// spread over several OUs below DC.ComputersOU; about 5% are disabled.
	Computers int
	// LAPS extends the schema with legacy and Windows LAPS and adds the
	// LAPS OU, a readers group and two technicians (see DC.LAPS and
	// DC.SetLAPS). It is cached in a derived template (about 5 s once).
	LAPS bool
	// NoNTLM sets `ntlm auth = disabled` on the DC: it refuses NTLM
	// logons of domain accounts (on its own services and when a member
	// passes one through), as a domain that has retired NTLM does.
	// Kerberos is unaffected.
	NoNTLM bool
	// ClockSkew runs the DC under libfaketime with its clock this far
	// ahead (negative: behind) of the machine's, so that Kerberos
	// clients see KRB_AP_ERR_SKEW. Zero runs it on the real clock. It
	// needs the faketime package (scripts/setup.sh installs it).
	ClockSkew time.Duration
}

// The DC defaults. They are fixed so that the provisioned template can be
// reused across labs; each lab is still isolated on its own bridge.
const (
	DefaultRealm  = "LCLAB.LANCONNECT.TEST"
	DefaultDomain = "LCLAB"
	// DCNetBIOSName is the DC's NetBIOS (host) name, baked into templates.
	DCNetBIOSName = "LCDC1"
)

// Options says what a lab contains. The zero value is a lab with only a
// bridge.
type Options struct {
	// Targets lists the Windows-like targets; it may be empty.
	Targets []TargetSpec
	// Workgroup is the targets' workgroup. Empty means generated.
	Workgroup string
	// DC requests a Samba AD DC; nil means none.
	DC *DCSpec
	// Client also creates a client namespace on the bridge, for code that
	// discovers with default targets (local subnets, broadcast).
	Client bool
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// Owner names the program that owns the lab in its state file (see
	// State.OwnerCmd and `lab status`). Empty means the executable's base
	// name. The lab command sets "lab", and `lab down` stops only labs
	// with that owner (unless -all) or whose owner is gone.
	Owner string
}

// Timings are the measured durations of a lab's start-up and teardown.
type Timings struct {
	Network   time.Duration // lock, stale-lab cleanup, subnet choice, bridge, namespaces, users
	Targets   time.Duration // configuring and starting every target until all answered
	DC        time.Duration // copying (or provisioning) the DC and starting it until LDAPS answered
	Provision time.Duration // part of DC: provisioning a template, zero when cached
	Computers time.Duration // part of DC: bulk-loading computers with ldbadd
	LAPS      time.Duration // part of DC: the LAPS schema and accounts, zero when cached
	Members   time.Duration // joining and starting domain-member targets (after the DC)
	Start     time.Duration // all of Start
	Close     time.Duration // all of Close; zero until Close ran
}

// String formats the timings on one line.
func (t Timings) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "start %v (network %v, targets %v", t.Start.Round(time.Millisecond),
		t.Network.Round(time.Millisecond), t.Targets.Round(time.Millisecond))
	if t.DC > 0 {
		fmt.Fprintf(&b, ", dc %v", t.DC.Round(time.Millisecond))
		if t.Provision > 0 {
			fmt.Fprintf(&b, " incl. provisioning %v", t.Provision.Round(time.Millisecond))
		}
		if t.Computers > 0 {
			fmt.Fprintf(&b, " incl. computers %v", t.Computers.Round(time.Millisecond))
		}
		if t.LAPS > 0 {
			fmt.Fprintf(&b, " incl. LAPS schema %v", t.LAPS.Round(time.Millisecond))
		}
	}
	if t.Members > 0 {
		fmt.Fprintf(&b, ", members %v", t.Members.Round(time.Millisecond))
	}
	b.WriteString(")")
	if t.Close > 0 {
		fmt.Fprintf(&b, ", close %v", t.Close.Round(time.Millisecond))
	}
	return b.String()
}

// Target is a running Windows-like target: smbd and nmbd in the network
// namespace Netns, with a configuration of its own under the lab directory.
type Target struct {
	Netns              // Name is the namespace, Addr the target's lab address
	NetBIOSName string // its NetBIOS name
	Workgroup   string
	Variant     Variant
	// Admin is in BUILTIN\Administrators (groupmap) and in `admin users`
	// of ADMIN$ and C$. Like the Windows built-in Administrator, it is not
	// subject to UAC remote restrictions.
	Admin Account
	// User is an ordinary account: it can log on, but cannot use ADMIN$ or
	// C$ or write the registry.
	User     Account
	AdminDir string // the local directory that ADMIN$ serves (C:\Windows)
	CDir     string // the local directory that C$ serves (C:\)
	SMBConf  string // path of its smb.conf
	NoSMB    bool   // smbd is not run
	NoNmbd   bool   // nmbd is not run
	// ResidentRPC reports TargetSpec.ResidentRPC: samba-dcerpcd runs as
	// a daemon of its own.
	ResidentRPC bool
	// Member reports a domain member (TargetSpec.DomainMember). FQDN is
	// then its DNS name in the realm (lower case), resolvable through
	// the DC's DNS, and Realm the DC's realm; both are empty otherwise.
	Member bool
	FQDN   string
	Realm  string

	dir      string
	smbd     *Process
	dcerpcd  *Process
	nmbd     *Process
	winbindd *Process
	adminGrp string
}

// DC is the lab's running Samba AD domain controller.
type DC struct {
	Netns
	Realm  string // DNS realm, upper case
	Domain string // NetBIOS domain
	BaseDN string // e.g. DC=lclab,DC=lanconnect,DC=test
	// Hostname is the DC's DNS name; it and Addr are the SANs of its
	// LDAPS certificate.
	Hostname string
	// Admin is the domain Administrator; its password never expires.
	Admin Account
	// CAFile is the PEM file of the lab CA that signed the LDAPS
	// certificate, and CAPool holds the same CA.
	CAFile string
	CAPool *x509.CertPool
	// ComputersOU is the OU below which the bulk-loaded computers live
	// (in sub-OUs); it contains nothing else.
	ComputersOU string
	// Computers lists what was bulk-loaded.
	Computers []Computer
	SMBConf   string // path of its smb.conf
	// LAPS is set when DCSpec.LAPS asked for the LAPS schemas and
	// accounts.
	LAPS *LAPSLab
	// NoNTLM and ClockSkew are as in DCSpec.
	NoNTLM    bool
	ClockSkew time.Duration

	dir  string
	proc *Process
}

// Computer is one computer object bulk-loaded into the DC.
type Computer struct {
	Name      string // CN and NetBIOS name (sAMAccountName without '$')
	OU        string // DN of the OU that holds it
	DN        string
	DNSName   string // dNSHostName
	OS        string // operatingSystem
	OSVersion string // operatingSystemVersion
	Enabled   bool   // false: userAccountControl has ACCOUNTDISABLE
}

// Errors returned by the lab. Match them with errors.Is.
var (
	// ErrUnavailable means the lab cannot run here (not root, no network
	// namespaces, or Samba tools missing). Available wraps it.
	ErrUnavailable = errors.New("testlab: lab unavailable")
	// ErrBadOptions means Options or a spec in it is invalid.
	ErrBadOptions = errors.New("testlab: invalid options")
	// ErrNoFreeSubnet means no unused /24 in 10.0.0.0/8 was found.
	ErrNoFreeSubnet = errors.New("testlab: no unused /24 in 10.0.0.0/8")
	// ErrClosed means the lab was already closed.
	ErrClosed = errors.New("testlab: lab closed")
	// ErrNotReady means a daemon did not become ready in time, or exited.
	ErrNotReady = errors.New("testlab: daemon not ready")
	// ErrNoSMB means StopSMB or StartSMB was called on a NoSMB target.
	ErrNoSMB = errors.New("testlab: target runs no smbd")
	// ErrNoNmbd means StopNmbd was called on a NoNmbd target.
	ErrNoNmbd = errors.New("testlab: target runs no nmbd")
)

// CommandError is a failed external command. Args never contain secrets
// (the lab passes passwords on standard input or in files).
type CommandError struct {
	Args   []string
	Output string // combined output, trimmed
	Err    error
}

func (e *CommandError) Error() string {
	s := fmt.Sprintf("testlab: %s: %v", strings.Join(e.Args, " "), e.Err)
	if e.Output != "" {
		s += ": " + e.Output
	}
	return s
}

// Unwrap returns the underlying error.
func (e *CommandError) Unwrap() error { return e.Err }

// NotReadyError says which daemon failed to start and how; it matches
// ErrNotReady.
type NotReadyError struct {
	What string // e.g. "smbd on LCT3F2A00"
	Why  string
	Log  string // tail of the daemon's output, if any
}

func (e *NotReadyError) Error() string {
	s := "testlab: " + e.What + " not ready: " + e.Why
	if e.Log != "" {
		s += "\n" + e.Log
	}
	return s
}

// Is reports whether target is ErrNotReady.
func (e *NotReadyError) Is(target error) bool { return target == ErrNotReady }
