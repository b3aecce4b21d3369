package smbconn

import (
	"context"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	smb2 "github.com/oiweiwei/go-smb2.fork"
)

// Auth is the account a Session logs on with: NTLMv2 with a password or
// an NT hash. Its String, GoString and LogValue never show the secret.
type Auth struct {
	User   string
	Domain string // NetBIOS or DNS domain; empty lets the server pick (see Local)
	// Local names an account of the computer itself: with an empty
	// Domain, the NTLM AUTHENTICATE carries the server's NetBIOS computer
	// name from its CHALLENGE (COMPUTER\user), which Windows and Samba
	// check against their own accounts. Without it, go-smb2 replaces an
	// empty domain with the CHALLENGE's NetBIOS domain, and a domain
	// member asks its domain, which knows no such account. Local does not
	// change a non-empty Domain.
	Local bool
	// Password or NTHash (16 bytes); NTHash wins when both are set.
	Password string
	NTHash   []byte
}

// String returns DOMAIN\user without the secret.
func (a Auth) String() string {
	if a.Domain == "" {
		return a.User + " (secret redacted)"
	}
	return a.Domain + `\` + a.User + " (secret redacted)"
}

// GoString is String, so that %#v does not print the secret.
func (a Auth) GoString() string { return "smbconn.Auth{" + a.String() + "}" }

// Format prints String for every verb.
func (a Auth) Format(f fmt.State, _ rune) { fmt.Fprint(f, a.String()) }

// LogValue logs the account only.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", a.User), slog.String("domain", a.Domain))
}

// Encryption says whether a Session encrypts its traffic.
type Encryption int

// Encryption modes. The zero value is EncryptAuto.
const (
	// EncryptAuto encrypts only when the server asks for it (session or
	// share flag ENCRYPT_DATA).
	EncryptAuto Encryption = iota
	// EncryptPreferred asks for encryption whenever the server can do it
	// (SMB 3.x), and carries on unencrypted otherwise.
	EncryptPreferred
	// EncryptRequired asks for encryption and fails Dial with
	// ErrEncryptionUnavailable when the session is not encrypted.
	EncryptRequired
)

// ContextDialer dials TCP connections; *net.Dialer is one.
type ContextDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options tune Dial. The zero value is: port 445, a 5 s TCP connect
// timeout, a 20 s limit on negotiation and logon, signing required,
// encryption when the server asks, guest sessions refused.
type Options struct {
	// Transport selects Direct TCP (the zero value, TransportDirect) or
	// the NetBIOS session service (TransportNetBIOS). Dial does not fall
	// back from one to the other: the caller decides (package adauth
	// tries 445, then 139).
	Transport Transport
	// Port is the TCP port; 0 means 445 for Direct TCP and 139 for the
	// NetBIOS session service.
	Port int
	// CalledName is the server's NetBIOS name that a NetBIOS SESSION
	// REQUEST calls (with suffix 0x20); empty means SMBServerName. When
	// the server refuses the name as one it does not serve, Dial calls
	// SMBServerName once more. Only TransportNetBIOS uses it; it is not
	// an identity check (ExpectName is).
	CalledName string
	// CallingName is this machine's NetBIOS name in the SESSION REQUEST;
	// empty means the first label of Workstation, else "LANCONNECT".
	CallingName string
	// DialTimeout bounds the TCP connect, and on TransportNetBIOS the
	// SESSION REQUEST's answer too; 0 means 5 s. A context deadline that
	// comes earlier wins.
	DialTimeout time.Duration
	// SetupTimeout bounds negotiation and session setup; 0 means 20 s.
	SetupTimeout time.Duration
	// AllowUnsigned lets the session run unsigned when the server does
	// not require signing. By default signing is required.
	AllowUnsigned bool
	// Encryption selects when to encrypt.
	Encryption Encryption
	// AllowGuest returns guest or anonymous sessions instead of failing
	// with ErrGuest. Such sessions are unsigned; use them only for probes.
	AllowGuest bool
	// MinDialect refuses a server that negotiates an older dialect, with
	// ErrDowngrade and before any credentials are sent; for example
	// 0x0300 refuses SMB 2.x. 0 accepts every dialect go-smb2 speaks
	// (2.0.2 to 3.1.1). A man in the middle can strip dialects only down
	// to MinDialect: 3.1.1 is protected by its preauth integrity hash, and
	// 3.0 and 3.0.2 by FSCTL_VALIDATE_NEGOTIATE_INFO, which Dial always
	// sends on them.
	MinDialect Dialect
	// Workstation is the client name sent in the NTLM AUTHENTICATE
	// message; empty sends none.
	Workstation string
	// ExpectName, when it is a computer name (not empty, not an IP
	// literal), is compared with the identity in the server's NTLM
	// CHALLENGE before the AUTHENTICATE message is made (CheckIdentity). On
	// a mismatch the session setup is abandoned: no AUTHENTICATE is sent,
	// and Dial fails with an *IdentityError (ErrIdentityMismatch).
	ExpectName string
	// Initiator, when set, logs on with it instead of NTLMv2 with Auth:
	// for example the Kerberos initiator of internal/krb (Cache.Initiator
	// for cifs/FQDN). Auth.User may then be empty; it only names the
	// account in errors. ExpectName is not checked against an NTLM
	// CHALLENGE (there is none): the initiator authenticates the server
	// itself, as Kerberos mutual authentication does. If the initiator
	// has a method Failure() error, a failed setup returns that error.
	Initiator smb2.Initiator
	// Dialer dials TCP; nil means a net.Dialer.
	Dialer ContextDialer
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Dialect is an SMB2/3 dialect revision, for example 0x0311.
type Dialect uint16

// String formats the dialect as "3.1.1".
func (d Dialect) String() string {
	switch d {
	case 0x0202:
		return "2.0.2"
	case 0x0210:
		return "2.1"
	case 0x0300:
		return "3.0"
	case 0x0302:
		return "3.0.2"
	case 0x0311:
		return "3.1.1"
	case 0:
		return "none"
	}
	return fmt.Sprintf("0x%04x", uint16(d))
}

// Info is what a server negotiated and revealed. A failed Dial returns
// the part it learned in *Error.Info.
type Info struct {
	Host string // as given to Dial
	Addr string // remote ip:port, empty when TCP failed
	// Transport is the transport the session was dialled over.
	Transport Transport
	// CalledName is the NetBIOS name the session service accepted (on
	// TransportNetBIOS), empty otherwise.
	CalledName string
	// Dialect is the negotiated dialect, 0 before negotiation.
	Dialect Dialect
	// ServerRequiresSigning reports the server's SecurityMode.
	ServerRequiresSigning bool
	// Signed reports whether go-smb2 protects this session's messages
	// (signs them, or encrypts them, which also authenticates): true for
	// every session that is not guest or anonymous.
	Signed bool
	// Encrypted reports whether messages on this session are encrypted.
	Encrypted bool
	// ServerEncryption reports whether the server offers encryption.
	ServerEncryption bool
	// Cipher is the SMB 3.1.1 cipher id (1 AES-128-CCM, 2 AES-128-GCM).
	Cipher uint16
	// Flags are the SessionFlags of the final SESSION_SETUP response.
	Flags SessionFlags
	// SetupStatus is the status of the last SESSION_SETUP response.
	SetupStatus NTStatus
	// Challenge is the server's NTLM target info; HasChallenge reports
	// whether one was received (it is, even on a failed logon).
	Challenge    ChallengeInfo
	HasChallenge bool
	// NegotiationValidated reports whether the negotiation is protected
	// against a man in the middle: by the preauth integrity hash (3.1.1)
	// or by a matching FSCTL_VALIDATE_NEGOTIATE_INFO (3.0, 3.0.2). False
	// for SMB 2.x, which has neither (use Options.MinDialect).
	NegotiationValidated bool
	// MaxReadSize and MaxWriteSize are the server's limits per request.
	MaxReadSize, MaxWriteSize, MaxTransactSize uint32
}

// Guest reports whether the session is a guest or anonymous session.
func (i Info) Guest() bool { return i.Flags&(SessionIsGuest|SessionIsNull) != 0 }

// Traffic counts the frames received after the session was set up, by
// protection. It lets tests prove signing and encryption on the wire.
type Traffic struct {
	Frames, Signed, Unsigned, Encrypted uint64
}

// Session is one authenticated SMB2/3 session to one host, shared by file
// access (Mount) and RPC named pipes (OpenPipe, PipeDialer). It is safe
// for concurrent use. It does not reconnect: after the connection is
// lost every call fails and the owner dials again.
type Session struct {
	host   string
	conn   *watchConn
	sess   *smb2.Session
	info   Info
	logger *slog.Logger

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// captureInitiator wraps go-smb2's NTLM initiator to read the server's
// CHALLENGE on its way in and, when expect names a computer, to check the
// server's identity before the inner initiator computes the AUTHENTICATE
// message.
type captureInitiator struct {
	smb2.Initiator
	expect string
	// passThrough: not NTLM (a Kerberos initiator); only the session key
	// is captured.
	passThrough bool
	// local: the inner *smb2.NTLMInitiator logs on with the server's
	// NetBIOS computer name as its domain (Auth.Local).
	local bool

	mu      sync.Mutex
	info    ChallengeInfo
	ok      bool
	refused error  // an *IdentityError: the setup was abandoned
	key     []byte // the session key, once go-smb2 asked for it
}

func (i *captureInitiator) OID() asn1.ObjectIdentifier { return i.Initiator.OID() }

// AcceptSecContext records the CHALLENGE and, on an identity mismatch,
// returns an error instead of an AUTHENTICATE token: go-smb2 then ends the
// session setup without sending anything more.
func (i *captureInitiator) AcceptSecContext(sc []byte) ([]byte, error) {
	if i.passThrough {
		return i.Initiator.AcceptSecContext(sc)
	}
	ci, perr := ParseChallenge(sc)
	var refuse error
	if ExpectsIdentity(i.expect) {
		if perr != nil {
			refuse = &IdentityError{Expected: i.expect, Unreadable: true}
		} else {
			refuse = CheckIdentity(ci, i.expect)
		}
	}
	i.mu.Lock()
	if perr == nil {
		i.info, i.ok = ci, true
	}
	i.refused = refuse
	i.mu.Unlock()
	if refuse != nil {
		return nil, refuse
	}
	if n, ok := i.Initiator.(*smb2.NTLMInitiator); ok && i.local && perr == nil && ci.LocalAccountDomain() != "" {
		// go-smb2 fixes the domain when it builds the NEGOTIATE, which
		// does not depend on it: build it again with the computer's name,
		// so that the AUTHENTICATE (and its MIC) uses that domain.
		n.Domain = ci.LocalAccountDomain()
		if _, err := n.InitSecContext(); err != nil {
			return nil, err
		}
	}
	return i.Initiator.AcceptSecContext(sc)
}

// SessionKey passes the initiator's session key on and keeps a copy for
// the frame watcher, which decrypts with keys derived from it.
func (i *captureInitiator) SessionKey() []byte {
	k := i.Initiator.SessionKey()
	i.mu.Lock()
	i.key = append([]byte(nil), k...)
	i.mu.Unlock()
	return k
}

func (i *captureInitiator) sessionKey() []byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.key
}

func (i *captureInitiator) challenge() (ChallengeInfo, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.info, i.ok
}

func (i *captureInitiator) refusal() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.refused
}

// Dial connects to host (an IP address or a name), negotiates SMB2/3 and
// logs on with auth over NTLMv2. It honours ctx for the whole setup. It
// returns an *Error whose Err is a *DialError, an NTStatus (for example
// StatusLogonFailure or StatusNTLMBlocked), ErrGuest,
// ErrEncryptionUnavailable, ErrSigning, ErrProtocol or a context error.
// With Options.ExpectName it fails with an *IdentityError, before any
// AUTHENTICATE is sent, when the server's NTLM CHALLENGE names another
// computer. It does not check what the account may do on the host.
func Dial(ctx context.Context, host string, auth Auth, opts Options) (s *Session, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	info := Info{Host: host}
	fail := func(op string, e error) (*Session, error) {
		return nil, &Error{Op: op, Host: host, Info: info, Err: e}
	}
	host = strings.TrimSpace(host)
	if host == "" || strings.ContainsAny(host, `\/`) {
		return fail("dial", fmt.Errorf("%w: host %q", ErrBadInput, host))
	}
	if auth.User == "" && opts.Initiator == nil {
		return fail("dial", fmt.Errorf("%w: no user", ErrBadInput))
	}
	transport := opts.Transport
	switch transport {
	case "":
		transport = TransportDirect
	case TransportDirect, TransportNetBIOS:
	default:
		return fail("dial", fmt.Errorf("%w: transport %q", ErrBadInput, opts.Transport))
	}
	info.Transport = transport
	port := opts.Port
	if port == 0 {
		port = 445
		if transport == TransportNetBIOS {
			port = nbtDefaultPort
		}
	}
	addr := net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))

	dialTimeout := opts.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = 5 * time.Second
	}
	var d ContextDialer = &net.Dialer{}
	if opts.Dialer != nil {
		d = opts.Dialer
	}
	setupTimeout := opts.SetupTimeout
	if setupTimeout <= 0 {
		setupTimeout = 20 * time.Second
	}
	sctx, scancel := context.WithTimeout(ctx, setupTimeout)
	defer scancel()
	start := time.Now()
	dialTCP := func(ctx context.Context) (net.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		c, err := d.DialContext(dctx, "tcp", addr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, ClassifyDial(addr, err)
		}
		return c, nil
	}
	var raw net.Conn
	if transport == TransportNetBIOS {
		calling := opts.CallingName
		if calling == "" {
			calling = callingName(opts.Workstation)
		}
		called := opts.CalledName
		if called == "" {
			called = SMBServerName
		}
		// A session service answers a SESSION REQUEST at once: the
		// exchange gets the connect budget, not the whole setup's.
		deadline := time.Now().Add(dialTimeout)
		if d, ok := sctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		raw, info.CalledName, err = dialNBT(sctx, dialTCP, called, calling, deadline, logger)
		if err != nil {
			if ctx.Err() != nil {
				return fail("dial", ctx.Err())
			}
			var de *DialError
			if errors.As(err, &de) {
				return fail("dial", err)
			}
			info.Addr = addr
			return fail("netbios session", err)
		}
	} else {
		raw, err = dialTCP(ctx)
		if err != nil {
			return fail("dial", err)
		}
	}
	info.Addr = raw.RemoteAddr().String()
	logger.Debug("smb tcp connected", "addr", info.Addr, "transport", transport, "took", time.Since(start))

	wc := newWatchConn(raw)
	wc.minDialect = opts.MinDialect
	wc.nbt = transport == TransportNetBIOS
	// go-smb2 waits on the context, but a blocked TCP read would outlive
	// it; the deadline unblocks the reader when the setup is cancelled.
	stop := context.AfterFunc(sctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })

	ntlm := &smb2.NTLMInitiator{
		User:        auth.User,
		Domain:      auth.Domain,
		Workstation: opts.Workstation,
	}
	if len(auth.NTHash) > 0 {
		ntlm.Hash = append([]byte(nil), auth.NTHash...)
	} else {
		ntlm.Password = auth.Password
	}
	ci := &captureInitiator{Initiator: ntlm, expect: opts.ExpectName, local: auth.Local && auth.Domain == ""}
	var initiator smb2.Initiator = ci
	if opts.Initiator != nil {
		ci = &captureInitiator{Initiator: opts.Initiator, passThrough: true}
		initiator = ci
	}
	wc.sessionKey = ci.sessionKey
	dialer := &smb2.Dialer{
		Negotiator: smb2.Negotiator{
			RequireMessageSigning: !opts.AllowUnsigned,
			UseMessageEncryption:  opts.Encryption != EncryptAuto,
		},
		Initiator: initiator,
	}
	sess, err := dialSafely(sctx, dialer, wc)
	stopped := stop()
	n := wc.snapshot()
	info.fill(n, opts)
	info.Challenge, info.HasChallenge = ci.challenge()
	if err != nil || !stopped {
		_ = raw.Close()
		if ctx.Err() != nil {
			return fail(setupOp(n), ctx.Err())
		}
		if f, ok := opts.Initiator.(interface{ Failure() error }); ok && f.Failure() != nil {
			logger.Debug("smb session setup failed in the initiator", "host", host, "err", f.Failure())
			return fail("session setup", f.Failure())
		}
		if refused := ci.refusal(); refused != nil {
			logger.Debug("smb session setup abandoned before AUTHENTICATE", "host", host, "err", refused)
			return fail("session setup", refused)
		}
		if sctx.Err() != nil {
			return fail(setupOp(n), fmt.Errorf("%w: SMB setup took longer than %v", context.DeadlineExceeded, setupTimeout))
		}
		return fail(setupOp(n), mapErr(err, n.setupStatus))
	}
	_ = raw.SetDeadline(time.Time{})
	s = &Session{host: host, conn: wc, sess: sess, info: info, logger: logger, done: make(chan struct{})}
	if info.Guest() && !opts.AllowGuest {
		_ = s.Close()
		return fail("session setup", ErrGuest)
	}
	if opts.Encryption == EncryptRequired && !info.Encrypted {
		_ = s.Close()
		return fail("session setup", fmt.Errorf("%w (dialect %v)", ErrEncryptionUnavailable, info.Dialect))
	}
	if info.Dialect < opts.MinDialect {
		_ = s.Close()
		return fail("negotiate", fmt.Errorf("%w: SMB %v is below the minimum %v", ErrDowngrade, info.Dialect, opts.MinDialect))
	}
	switch info.Dialect {
	case 0x0300, 0x0302:
		if info.Guest() {
			// No keys to sign with: MS-SMB2 skips the validation for
			// guest and anonymous sessions, which are refused unless
			// Options.AllowGuest (probes).
			break
		}
		if err := s.validateNegotiate(sctx); err != nil {
			_ = s.Close()
			return fail("validate negotiate", err)
		}
		s.info.NegotiationValidated = true
	case 0x0311:
		s.info.NegotiationValidated = true
	}
	logger.Debug("smb session up", "host", host, "dialect", info.Dialect, "signed", info.Signed, "encrypted", info.Encrypted, "took", time.Since(start))
	return s, nil
}

func setupOp(n negotiated) string {
	if !n.seen {
		return "negotiate"
	}
	return "session setup"
}

// panicErr is the error that replaces a panic of go-smb2 in a goroutine
// of this package: ErrProtocol. Panics in go-smb2's own goroutines (its
// receiver) cannot be recovered; the frame watcher keeps the frames that
// cause them away from it instead.
func panicErr(r any) error {
	return fmt.Errorf("%w: SMB client failed on the server's answer: %v", ErrProtocol, r)
}

// recoverInto, deferred by a method that calls go-smb2, turns a panic of
// go-smb2 in the caller's goroutine into *err.
func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = panicErr(r)
	}
}

// dialSafely runs go-smb2's DialContext and turns a panic inside it (a
// malformed server answer that go-smb2 does not check) into ErrProtocol.
func dialSafely(ctx context.Context, d *smb2.Dialer, c net.Conn) (s *smb2.Session, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, panicErr(r)
		}
	}()
	return d.DialContext(ctx, c)
}

func (i *Info) fill(n negotiated, opts Options) {
	i.Dialect = Dialect(n.dialect)
	i.ServerRequiresSigning = n.securityMode&securityModeSigningReq != 0
	i.Cipher = n.cipher
	i.ServerEncryption = (i.Dialect == 0x0311 && n.cipher != 0) || (i.Dialect >= 0x0300 && i.Dialect < 0x0311 && n.capabilities&capEncryption != 0)
	i.Flags = n.sessionFlags
	i.SetupStatus = n.setupStatus
	i.MaxReadSize, i.MaxWriteSize, i.MaxTransactSize = n.maxRead, n.maxWrite, n.maxTransact
	// Mirror go-smb2's rules: it encrypts when asked and the server can,
	// or when the server sets ENCRYPT_DATA; otherwise it signs unless the
	// session is guest or anonymous.
	i.Encrypted = (opts.Encryption != EncryptAuto && i.ServerEncryption) || n.sessionFlags&SessionEncryptData != 0
	i.Signed = n.setupDone && !i.Guest()
}

// Host returns the host name or address the session was dialled with.
func (s *Session) Host() string { return s.host }

// Info returns what the server negotiated.
func (s *Session) Info() Info { return s.info }

// Traffic returns the frame counters of the session so far.
func (s *Session) Traffic() Traffic {
	n := s.conn.snapshot()
	return Traffic{Frames: n.framesIn, Signed: n.signedIn, Unsigned: n.unsignedIn, Encrypted: n.encIn}
}

// SharePath returns the UNC path \\host\share used for tree connects.
// go-smb2 would otherwise build \\ip:port\share, which Windows refuses.
func (s *Session) SharePath(share string) string {
	return `\\` + strings.Trim(s.host, "[]") + `\` + share
}

// Mount tree-connects to share (for example "ADMIN$") and returns go-smb2's
// Share. The returned Share is bound to context.Background(): call
// WithContext on it for each operation. The caller must Umount it. Errors
// are *Error; an access denial matches os.ErrPermission.
func (s *Session) Mount(ctx context.Context, share string) (_ *smb2.Share, err error) {
	defer recoverInto(&err)
	if share == "" || strings.ContainsAny(share, `\/`) {
		return nil, &Error{Op: "tree connect", Host: s.host, Info: s.info, Err: fmt.Errorf("%w: share %q", ErrBadInput, share)}
	}
	if err := s.closedErr(); err != nil {
		return nil, &Error{Op: "tree connect", Host: s.host, Info: s.info, Err: err}
	}
	sh, err := s.sess.WithContext(ctx).Mount(s.SharePath(share))
	if err != nil {
		return nil, &Error{Op: "tree connect " + share, Host: s.host, Info: s.info, Err: mapErr(err, 0)}
	}
	return sh, nil
}

func (s *Session) closedErr() error {
	select {
	case <-s.done:
		return ErrClosed
	default:
		return nil
	}
}

// Close logs off and closes the connection. It waits at most 2 s for the
// server to acknowledge the logoff. It is safe to call more than once.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					errc <- panicErr(r)
				}
			}()
			errc <- s.sess.WithContext(ctx).Logoff()
		}()
		select {
		case err := <-errc:
			if err != nil {
				s.logger.Debug("smb logoff failed", "host", s.host, "err", err)
			}
		case <-ctx.Done():
		}
		// Logoff closes the connection when it succeeds; closing again
		// is harmless and ends go-smb2's goroutines when it did not.
		if err := s.conn.Close(); err != nil && !isClosedErr(err) {
			s.closeErr = err
		}
	})
	return s.closeErr
}

func isClosedErr(err error) bool { return errors.Is(err, net.ErrClosed) }
