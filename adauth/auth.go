package adauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	svcctl "github.com/oiweiwei/go-msrpc/msrpc/scmr/svcctl/v2"
	smb2 "github.com/oiweiwei/go-smb2.fork"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/krb"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// Authenticator proves that credentials are administrator on a computer.
//
// Authenticate returns a *Grant only when every admin check passed; any
// failure is an *AuthError with a Diagnosis. The caller owns the Grant and
// must Close it.
type Authenticator interface {
	Authenticate(ctx context.Context, host string, creds Credentials) (*Grant, error)
}

// Encryption selects when an SMB session is encrypted.
type Encryption int

// Encryption settings. The zero value is EncryptPreferred.
const (
	// EncryptPreferred encrypts whenever the computer can (SMB 3.x) and
	// falls back to a signed session otherwise (SMB 2.x). It is the
	// default because it also protects the applet and the RPC traffic on
	// the session from being read, and because go-smb2 signs with
	// AES-CMAC only (no AES-GMAC), which measured slower on the lab than
	// AES-GCM encryption (see docs and scripts/bench-copy.sh).
	EncryptPreferred Encryption = iota
	// EncryptIfServerAsks encrypts only when the computer requires it,
	// and otherwise relies on signing (always required).
	EncryptIfServerAsks
	// EncryptRequired fails with ErrEncryption when the computer cannot
	// encrypt.
	EncryptRequired
)

func (e Encryption) smb() smbconn.Encryption {
	switch e {
	case EncryptIfServerAsks:
		return smbconn.EncryptAuto
	case EncryptRequired:
		return smbconn.EncryptRequired
	}
	return smbconn.EncryptPreferred
}

// Admin checks, as named in CheckResult.Name.
const (
	CheckAdminShareWrite = "admin-share-write"  // ADMIN$ tree connect, create and delete a probe file
	CheckSCMCreate       = "scm-create-service" // ROpenSCManagerW with SC_MANAGER_CREATE_SERVICE
)

// SC_MANAGER access rights (MS-SCMR 3.1.4).
const (
	scManagerConnect       = 0x0001
	scManagerCreateService = 0x0002
	errorAccessDenied      = 5
)

// The transports of SMBAuthenticator.Transports and Facts.Transport.
const (
	TransportTCP445 = "tcp445" // SMB over Direct TCP, port 445
	TransportNBT139 = "nbt139" // SMB over the NetBIOS session service, port 139
)

// SMBAuthenticator is the Authenticator over SMB2/3 with NTLMv2. It
// reaches the computer on TCP 445 and, when 445 is refused or filtered,
// through the NetBIOS session service on TCP 139 (Transports), logs
// on, refuses guest sessions, then proves administrator rights twice:
// it tree-connects ADMIN$ and creates and deletes a uniquely named probe
// file there, and it opens the Service Control Manager over \pipe\svcctl
// with SC_MANAGER_CREATE_SERVICE. Signing is always required.
//
// The zero value is ready to use: port 445, a 5 s connect timeout, and
// encryption whenever the computer offers SMB 3 (EncryptPreferred). It is safe for concurrent use
// and keeps no state between calls. It does not store credentials.
type SMBAuthenticator struct {
	// Port is the SMB port of Direct TCP; 0 means 445.
	Port int
	// Transports are the ways to reach SMB, tried in this order while the
	// previous one is refused or filtered (TCP connect reset or timed
	// out): TransportTCP445 (Direct TCP) and TransportNBT139 (the NetBIOS
	// session service, which some networks leave open when they filter
	// 445). Nil means both, 445 first. Any other failure (a logon
	// failure, an identity mismatch) ends the attempt: credentials never
	// go over a second transport after the first one reached the
	// computer. Facts.Transport says which one carried the session.
	Transports []string
	// NetBIOSPort is the port of the NetBIOS session service; 0 means 139.
	NetBIOSPort int
	// DialTimeout bounds the TCP connect; 0 means 5 s.
	DialTimeout time.Duration
	// Encryption selects when to encrypt.
	Encryption Encryption
	// MinDialect is the oldest SMB dialect accepted, as its revision
	// number: 0x0300 for SMB 3.0, 0x0311 for 3.1.1. A computer that
	// negotiates an older one fails with ErrDowngrade before credentials
	// are sent. 0 accepts SMB 2.0.2 and up (the lab's Samba 4.17 speaks
	// 3.1.1). SMB 3.1.1 negotiations are protected by their preauth
	// integrity hash and 3.0/3.0.2 ones are always validated
	// (FSCTL_VALIDATE_NEGOTIATE_INFO); SMB 2.x has no protection, so a
	// man in the middle can strip a session down to 2.x unless MinDialect
	// forbids it.
	MinDialect uint16
	// Workstation is the client name sent in NTLM; empty sends none.
	Workstation string
	// Auth is the authentication policy; the zero value is AuthAuto,
	// which uses Kerberos only when Kerberos is set (see AuthAuto).
	Auth AuthPolicy
	// Kerberos is the console's ticket cache, shared by every host and
	// owned (closed) by the caller; nil means NTLM only under AuthAuto,
	// and a failure with ErrKerberos under AuthKerberos. With Kerberos,
	// the computer's DNS name comes from WithDNSName, else from the
	// expected name (WithExpectedName) or the address when they are DNS
	// names; the service ticket is for cifs/FQDN and the server must
	// prove that it holds that name's key (mutual authentication).
	Kerberos *Kerberos
	// Logger receives debug messages (never secrets); nil discards them.
	Logger *slog.Logger
}

var _ Authenticator = (*SMBAuthenticator)(nil)

type expectedNameKey struct{}

// WithExpectedName returns a context that tells an Authenticator which
// computer the caller means: name is the computer name it resolved or
// was given (a NetBIOS or DNS name). SMBAuthenticator then compares it
// with the identity in the computer's NTLM CHALLENGE and, on a mismatch,
// fails with ErrIdentityMismatch before sending any AUTHENTICATE (see
// smbconn.CheckIdentity for the rules). An empty name or an IP address
// literal means no check. Launchers that open their own NTLM connections
// to the same computer may read it with ExpectedName.
func WithExpectedName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, expectedNameKey{}, name)
}

// ExpectedName returns the name WithExpectedName put in ctx, or "".
func ExpectedName(ctx context.Context) string {
	s, _ := ctx.Value(expectedNameKey{}).(string)
	return s
}

type readOnlyKey struct{}

// WithReadOnly returns a context that asks an Authenticator to prove
// administrator rights without writing anything on the computer (a check,
// session.Client.Check): SMBAuthenticator then proves write access to
// ADMIN$ by opening the share's root directory for FILE_ADD_FILE and
// closing it, instead of creating and deleting a probe file, and still
// opens the Service Control Manager with SC_MANAGER_CREATE_SERVICE
// (creating nothing). It does not change what counts as administrator.
// An Authenticator of a vendor that cannot prove rights without writing
// must fail rather than write when ReadOnly(ctx) is true.
func WithReadOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, readOnlyKey{}, true)
}

// ReadOnly reports whether ctx carries WithReadOnly.
func ReadOnly(ctx context.Context) bool {
	v, _ := ctx.Value(readOnlyKey{}).(bool)
	return v
}

func (a *SMBAuthenticator) logger() *slog.Logger {
	if a == nil || a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

// Authenticate logs on to host (an IP address or a name) with creds and
// proves administrator rights. When ctx carries an expected computer name
// (WithExpectedName), the computer's NTLM identity must match it before
// any AUTHENTICATE is sent; otherwise the error matches
// ErrIdentityMismatch. On success the returned Grant holds the
// open SMB session, which deploy and the launchers reuse. Errors are
// *AuthError; see ShouldPrompt for which of them deserve a prompt.
//
// A panic of go-smb2 or go-msrpc on a hostile answer (in this goroutine)
// becomes an *AuthError of kind ErrSMBProtocol.
func (a *SMBAuthenticator) Authenticate(ctx context.Context, host string, creds Credentials) (g *Grant, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, &AuthError{Addr: host, Account: creds.Account(), Step: StepConnect, Kind: ErrSMBProtocol,
				Diagnosis: diagProtocolPanic(host), Err: fmt.Errorf("%w: %v", smbconn.ErrProtocol, r)}
		}
	}()
	return a.authenticate(ctx, host, creds)
}

func (a *SMBAuthenticator) authenticate(ctx context.Context, host string, creds Credentials) (*Grant, error) {
	if a == nil {
		a = &SMBAuthenticator{}
	}
	start := time.Now()
	log := a.logger()
	account := creds.Account()
	if strings.TrimSpace(host) == "" {
		return nil, &AuthError{Addr: host, Account: account, Step: StepConnect, Kind: ErrUnreachable,
			Diagnosis: diag.Diagnosis{Code: diag.NameNotResolved, Summary: "No computer name or address was given.", Fix: "Pick a computer with a name or an address."},
			Err:       fmt.Errorf("%w: empty host", ErrBadCredentials)}
	}
	method, fqdn, ae := a.choose(ctx, host, creds)
	if ae != nil {
		return nil, ae
	}
	// A ccache or keytab given to the Kerberos cache stands in for the
	// user and the password.
	ownSecret := method == MethodKerberos && a.Kerberos.hasSecret()
	if (creds.User == "" || !creds.HasSecret()) && !ownSecret {
		return nil, &AuthError{Addr: host, Account: account, Step: StepLogon, Kind: ErrNoCredentials, Retryable: true,
			Diagnosis: diag.Diagnosis{Code: diag.NoCredentials, Summary: "No user name and password were given.", Fix: "Enter an administrator account for this computer."},
			Err:       ErrNoCredentials}
	}
	auth := smbAuth(creds)
	opts := smbconn.Options{
		Port:        a.Port,
		DialTimeout: a.DialTimeout,
		Encryption:  a.Encryption.smb(),
		MinDialect:  smbconn.Dialect(a.MinDialect),
		Workstation: a.Workstation,
		ExpectName:  ExpectedName(ctx),
		Logger:      log,
	}
	spn := ""
	var krbCred krb.Credential
	if method == MethodKerberos {
		in, s, kc, ae := a.kerberosInitiator(ctx, host, fqdn, creds)
		krbCred = kc
		switch {
		case ae != nil && (a.Auth == "" || a.Auth == AuthAuto) && errors.Is(ae, krb.ErrNoKDC) && creds.HasSecret():
			// No KDC serves the account's domain: Kerberos cannot work,
			// so auto falls back to NTLM.
			log.Debug("no KDC for the account's domain; NTLM", "host", host, "account", account, "err", ae.Err)
			method = MethodNTLM
		case ae != nil:
			return nil, ae
		default:
			// The server proves its identity by mutual authentication,
			// which replaces the check of the NTLM challenge's names.
			opts.Initiator, opts.ExpectName, spn = in, "", s
		}
	}
	sess, errs := a.dial(ctx, host, auth, opts)
	if sess == nil {
		err := errs[len(errs)-1]
		if method == MethodKerberos {
			if ae := krbAuthError(host, account, err); ae != nil {
				return nil, ae
			}
		}
		var se *smbconn.Error
		var info smbconn.Info
		if errors.As(err, &se) {
			info = se.Info
		}
		var ae *AuthError
		if len(errs) > 1 {
			ae = classifyFallback(host, account, isLocalAccount(creds, info), errs)
		} else {
			ae = classifySetup(host, account, isLocalAccount(creds, info), err)
		}
		if info.Dialect != 0 {
			f := factsFrom(info, isLocalAccount(creds, info))
			f.Auth = method
			ae.Facts = &f
		}
		return nil, ae
	}
	info := sess.Info()
	g := &Grant{
		Addr:        host,
		Credentials: creds,
		session:     sess,
		Facts:       factsFrom(info, isLocalAccount(creds, info)),
	}
	g.Facts.Auth, g.Facts.SPN = method, spn
	if method == MethodKerberos {
		g.krbRPC = a.Kerberos.rpc(fqdn, krbCred)
	}
	// Encryption was asked for (the default) but the computer could not.
	g.Facts.EncryptionMissing = a.Encryption == EncryptPreferred && !info.Encrypted
	fail := func(ae *AuthError) (*Grant, error) {
		_ = sess.Close()
		f := g.Facts
		f.Checks = append([]CheckResult(nil), f.Checks...)
		ae.Facts = &f
		return nil, ae
	}
	logonTook := time.Since(start)
	if g.Facts.LocalAccount {
		// Best effort: which local account this is sharpens the UAC
		// diagnosis; failing to learn it changes nothing else.
		if rid, err := lookupRID(ctx, g); err == nil {
			g.Facts.AccountRID = rid
			g.Facts.BuiltinAdministrator = rid == ridBuiltinAdministrator
		} else if errors.Is(err, smbconn.ErrSigning) || ctx.Err() != nil {
			// A bad signature is never ignored, even in a best-effort step.
			return fail(connErr(host, account, StepAccount, err))
		} else {
			log.Debug("account RID lookup failed", "host", host, "account", account, "err", err)
		}
	}

	// Check 1: ADMIN$ is writable.
	t0 := time.Now()
	if ae := a.checkAdminShare(ctx, g); ae != nil {
		g.Facts.Checks = append(g.Facts.Checks, CheckResult{Name: CheckAdminShareWrite, Passed: false, Took: time.Since(t0), Detail: string(ae.Diagnosis.Code)})
		return fail(ae)
	}
	detail := ""
	if ReadOnly(ctx) {
		detail = "read-only: ADMIN$ opened for FILE_ADD_FILE, nothing created"
	}
	g.Facts.Checks = append(g.Facts.Checks, CheckResult{Name: CheckAdminShareWrite, Passed: true, Took: time.Since(t0), Detail: detail})
	// The computer answered signed or sealed with the session key, which
	// only a server that verified the password has: the credentials are
	// proven, and a LockoutGuard may fan them out before the SCM check
	// (whose bind waits for a fresh Samba's RPC daemons). The SESSION_SETUP
	// success alone is not enough: a host that answers for a name it does
	// not own can claim it for any password.
	notifyLogon(ctx, creds)

	// Check 2: the SCM grants create-service.
	t0 = time.Now()
	if ae := a.checkSCM(ctx, g); ae != nil {
		return fail(ae)
	}
	g.Facts.Checks = append(g.Facts.Checks, CheckResult{Name: CheckSCMCreate, Passed: true, Took: time.Since(t0)})
	g.Facts.LogonTook, g.Facts.Took = logonTook, time.Since(start)
	log.Debug("administrator proved", "host", host, "account", account, "took", g.Facts.Took)
	return g, nil
}

// dial opens the SMB session over the first transport that connects. It
// returns the session, or nil and the error of every transport tried, in
// order. It goes on to the next transport only when TCP was refused or
// timed out, so that credentials reach the computer at most once.
func (a *SMBAuthenticator) dial(ctx context.Context, host string, auth smbconn.Auth, opts smbconn.Options) (*smbconn.Session, []error) {
	ts := a.Transports
	if ts == nil {
		ts = []string{TransportTCP445, TransportNBT139}
	}
	var errs []error
	for i, t := range ts {
		o := opts
		switch t {
		case TransportTCP445:
			o.Transport, o.Port = smbconn.TransportDirect, a.Port
		case TransportNBT139:
			o.Transport, o.Port = smbconn.TransportNetBIOS, a.NetBIOSPort
			// The computer's NetBIOS name from discovery, else
			// *SMBSERVER; the NTLM identity check is the same on both.
			o.CalledName = smbconn.CalledName(opts.ExpectName)
		default:
			return nil, append(errs, &smbconn.Error{Op: "dial", Host: host, Err: fmt.Errorf("%w: unknown transport %q", smbconn.ErrBadInput, t)})
		}
		s, err := smbconn.Dial(ctx, host, auth, o)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if i == len(ts)-1 || ctx.Err() != nil || !(errors.Is(err, smbconn.ErrRefused) || errors.Is(err, smbconn.ErrFiltered)) {
			break
		}
		a.logger().Debug("smb transport unreachable, trying the next", "host", host, "transport", t, "err", err)
	}
	if len(errs) == 0 {
		errs = append(errs, &smbconn.Error{Op: "dial", Host: host, Err: fmt.Errorf("%w: no transport", smbconn.ErrBadInput)})
	}
	return nil, errs
}

// isLocalAccount decides whether creds name an account local to the
// computer: ".\user", "COMPUTER\user" with the computer's own NetBIOS
// name, or a bare user on a computer that is not joined to a domain.
func isLocalAccount(creds Credentials, info smbconn.Info) bool {
	if creds.IsLocal() {
		return true
	}
	if info.HasChallenge {
		if creds.Domain != "" && strings.EqualFold(creds.Domain, info.Challenge.NetBIOSComputer) {
			return true
		}
		if creds.Domain == "" && !info.Challenge.DomainJoined() {
			return true
		}
	}
	return false
}

func (a *SMBAuthenticator) checkAdminShare(ctx context.Context, g *Grant) *AuthError {
	account := g.Credentials.Account()
	ae := func(kind error, d diag.Diagnosis, err error) *AuthError {
		return &AuthError{Addr: g.Addr, Account: account, Step: StepAdminShare, Kind: kind, Diagnosis: d, Err: err,
			Retryable: kind == ErrNotAdmin}
	}
	// denied: the account reached ADMIN$ but may not write there (summary
	// says what was refused), so it is not an administrator.
	denied := func(summary string, err error) *AuthError {
		return ae(ErrNotAdmin, diag.Diagnosis{Code: diag.AdminShareWriteDenied, Summary: account + " " + summary,
			Fix: diagNotAdmin(account, g.Facts.LocalAccount, g.Facts.BuiltinAdministrator).Fix}, err)
	}
	share, err := g.session.Mount(ctx, "ADMIN$")
	if err != nil {
		switch {
		case errors.Is(err, os.ErrPermission), errors.Is(err, smbconn.StatusAccessDenied), errors.Is(err, smbconn.StatusNetworkAccessDenied):
			return ae(ErrNotAdmin, diagNotAdmin(account, g.Facts.LocalAccount, g.Facts.BuiltinAdministrator), err)
		case errors.Is(err, smbconn.StatusBadNetworkName), errors.Is(err, os.ErrNotExist):
			return ae(ErrNoAdminShare, diagAdminShareMissing(), err)
		}
		return connErr(g.Addr, account, StepAdminShare, err)
	}
	sh := share.WithContext(ctx)
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = share.WithContext(uctx).Umount()
	}()
	if ReadOnly(ctx) {
		return checkAdminShareReadOnly(ctx, g, sh, denied)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	probe := "lanconnect-probe-" + hex.EncodeToString(rnd[:]) + ".tmp"
	f, err := sh.OpenFile(probe, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return denied("can open ADMIN$ but not write to it, so it is not an administrator.", err)
		}
		return connErr(g.Addr, account, StepAdminShare, err)
	}
	_, werr := f.Write([]byte("lanconnect admin probe\r\n"))
	cerr := f.Close()
	rerr := sh.Remove(probe)
	if rerr != nil {
		a.logger().Warn("admin probe file left on target", "host", g.Addr, "file", `ADMIN$\`+probe, "err", rerr)
		g.Facts.ProbeLeftover = `ADMIN$\` + probe
	}
	if err := errors.Join(werr, cerr); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return denied("can create files in ADMIN$ but not write them.", err)
		}
		return connErr(g.Addr, account, StepAdminShare, err)
	}
	if rerr != nil && errors.Is(rerr, os.ErrPermission) {
		return denied("can create but not delete files in ADMIN$.", rerr)
	}
	return nil
}

// checkAdminShareReadOnly proves write access to ADMIN$ without creating
// anything: it opens the share's root directory with GENERIC_WRITE (which
// includes FILE_ADD_FILE, the right to create a file in it; no create
// disposition, so nothing is created) and closes it at once.
func checkAdminShareReadOnly(ctx context.Context, g *Grant, sh *smb2.Share, denied func(summary string, err error) *AuthError) *AuthError {
	account := g.Credentials.Account()
	f, err := sh.OpenFile(".", os.O_WRONLY, 0o755)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, smbconn.StatusAccessDenied) {
			return denied("can open ADMIN$ but not write to it, so it is not an administrator.", err)
		}
		return connErr(g.Addr, account, StepAdminShare, err)
	}
	if err := f.Close(); err != nil && ctx.Err() != nil {
		return connErr(g.Addr, account, StepAdminShare, err)
	}
	return nil
}

func (a *SMBAuthenticator) checkSCM(ctx context.Context, g *Grant) *AuthError {
	account := g.Credentials.Account()
	// The placeholder endpoint is never dialled: the dialer opens
	// \pipe\svcctl on the grant's session, so RPC runs under its logon.
	cc, err := dcerpc.Dial(ctx, pipePlaceholder, dcerpc.WithDialer(g.PipeDialer("svcctl")))
	if err != nil {
		return scmErr(g.Addr, account, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = cc.Close(cctx)
	}()
	cli, err := svcctl.NewSvcctlClient(ctx, cc, dcerpc.WithInsecure())
	if err != nil {
		return scmErr(g.Addr, account, err)
	}
	resp, err := cli.OpenSCMW(ctx, &svcctl.OpenSCMWRequest{
		MachineName:   g.Addr,
		DatabaseName:  "ServicesActive",
		DesiredAccess: scManagerConnect | scManagerCreateService,
	})
	if err != nil {
		if resp != nil && resp.Return == errorAccessDenied {
			g.Facts.Checks = append(g.Facts.Checks, CheckResult{Name: CheckSCMCreate, Passed: false, Detail: "access denied"})
			return &AuthError{Addr: g.Addr, Account: account, Step: StepSCM, Kind: ErrNotAdmin, Retryable: true,
				Diagnosis: diagNotAdmin(account, g.Facts.LocalAccount, g.Facts.BuiltinAdministrator), Err: fmt.Errorf("OpenSCManager(SC_MANAGER_CREATE_SERVICE): access denied: %w", err)}
		}
		return scmErr(g.Addr, account, err)
	}
	_, _ = cli.CloseService(ctx, &svcctl.CloseServiceRequest{ServiceObject: resp.SCM})
	return nil
}

func scmErr(host, account string, err error) *AuthError {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, smbconn.ErrConnLost) {
		return connErr(host, account, StepSCM, err)
	}
	return &AuthError{Addr: host, Account: account, Step: StepSCM, Kind: ErrSCM, Diagnosis: diagSCMUnavailable(), Err: err}
}

// connErr classifies a failure after logon: cancellation, a lost
// connection, or something unexpected.
func connErr(host, account, step string, err error) *AuthError {
	ae := &AuthError{Addr: host, Account: account, Step: step, Err: err}
	switch {
	case errors.Is(err, context.Canceled):
		ae.Kind = ErrCanceled
		ae.Diagnosis = diag.Diagnosis{Code: diag.Canceled, Summary: "The authentication was canceled."}
	case errors.Is(err, context.DeadlineExceeded):
		ae.Kind = ErrCanceled
		ae.Diagnosis = diag.Diagnosis{Code: diag.Timeout, Summary: host + " did not answer in time during the " + step + " check.",
			Fix: "Try again, and check the computer's load and the network."}
	case errors.Is(err, smbconn.ErrConnLost), errors.Is(err, smbconn.ErrClosed):
		ae.Kind, ae.Diagnosis = ErrSMBProtocol, diagConnLost()
	case errors.Is(err, smbconn.ErrSigning):
		ae.Kind, ae.Diagnosis = ErrSigning, diagSigning()
	default:
		ae.Kind = ErrSMBProtocol
		ae.Diagnosis = diag.Diagnosis{Code: diag.Other, Summary: "The admin check failed unexpectedly during " + step + ".", Fix: "See the error details."}
	}
	return ae
}

// smbAuth is creds as smbconn logs on with them. A local account (".\user")
// goes out under the computer's own name as its domain (smbconn.Auth.Local),
// so that the computer checks its own accounts even when it is a domain
// member.
func smbAuth(creds Credentials) smbconn.Auth {
	auth := smbconn.Auth{User: creds.User, Domain: creds.Domain, NTHash: creds.NTHash()}
	if creds.IsLocal() {
		auth.Domain = ""
		auth.Local = true
	}
	if p, ok := creds.Password(); ok {
		auth.Password = p
	}
	return auth
}
