package adauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// LDAP operations that an LDAPError names in its Op field.
const (
	OpLocate   = "locate"   // finding a domain controller through DNS SRV records
	OpDial     = "dial"     // opening the TCP connection
	OpTLS      = "tls"      // the TLS handshake (LDAPS) or the StartTLS upgrade
	OpRootDSE  = "rootdse"  // the anonymous read of the rootDSE
	OpBind     = "bind"     // simple or SASL bind
	OpSearch   = "search"   // the paged search for computers
	OpValidate = "validate" // checking the Directory's own settings before any traffic
)

// Sentinel errors of the directory discoverer. Every error that Directory
// returns is an *LDAPError; errors.Is matches these sentinels against it,
// and errors.As reaches the wrapped cause (for example an
// x509.HostnameError or an x509.UnknownAuthorityError).
var (
	// ErrTLS matches every failure to set up TLS: the handshake, a refused
	// StartTLS, and certificate verification (which also matches
	// ErrCertificate).
	ErrTLS = errors.New("adauth: LDAP TLS failed")
	// ErrCertificate matches a server certificate that failed verification:
	// an unknown authority, a name that does not match ServerName, an
	// expired or otherwise invalid certificate. errors.As reaches the x509
	// error that says which.
	ErrCertificate = errors.New("adauth: LDAP server certificate rejected")
	// ErrPlaintextRefused matches an ldap:// connection on which the server
	// would not upgrade with StartTLS while Directory.AllowPlaintext is
	// false: the discoverer refuses to go on unencrypted.
	ErrPlaintextRefused = errors.New("adauth: LDAP server offers no StartTLS and plaintext is not allowed")
	// ErrStrongAuthRequired matches LDAP result 8 (strongerAuthRequired),
	// which a DC returns for a simple bind without TLS or when it requires
	// signing.
	ErrStrongAuthRequired = errors.New("adauth: LDAP server requires stronger authentication")
	// ErrConfidentialityRequired matches LDAP result 13: the server wants
	// TLS for this operation.
	ErrConfidentialityRequired = errors.New("adauth: LDAP server requires confidentiality (TLS)")
	// ErrInvalidCredentials matches LDAP result 49: wrong account or
	// password, or an account that may not log on (locked, disabled,
	// expired; the LDAPError's Meaning says which when the DC tells).
	ErrInvalidCredentials = errors.New("adauth: LDAP invalid credentials")
	// ErrInsufficientAccess matches LDAP result 50 and the refusal of an
	// anonymous search (AD: "a successful bind must be completed"; Samba:
	// "operation unavailable without authentication").
	ErrInsufficientAccess = errors.New("adauth: LDAP access denied")
	// ErrBindMethod matches a bind the discoverer cannot do with the given
	// settings: an NT hash with a simple bind, or an NTLM bind on a server
	// that does not offer the GSS-SPNEGO SASL mechanism.
	ErrBindMethod = errors.New("adauth: LDAP bind method unavailable")
	// ErrNoDC matches a failure to find any domain controller: no URL, no
	// Domain, or no SRV record answered.
	ErrNoDC = errors.New("adauth: no domain controller found")
	// ErrProtocol matches an answer from the server that is not valid LDAP
	// or SPNEGO as this package understands it.
	ErrProtocol = errors.New("adauth: LDAP protocol error")
	// ErrBadConfig matches a Directory setting that is invalid (a malformed
	// URL, base DN or CA file) before any traffic is sent.
	ErrBadConfig = errors.New("adauth: invalid directory settings")
	// ErrSimpleBindLocated matches an explicit BindSimple with a password
	// and no URL: the DC would be located through DNS SRV records, which a
	// host on the LAN can spoof (mitm6), and a simple bind hands it the
	// clear password. Give the DC's URL, or bind with BindNTLM or
	// BindAuto. It is reported before any traffic; errors.Is also matches
	// ErrBindMethod.
	ErrSimpleBindLocated = errors.New("adauth: no simple bind to a DC located through DNS SRV: give its URL, or bind with NTLM")
)

// LDAPError describes a failure of the directory discoverer: the operation
// that failed, the LDAP result code when the server sent one, its meaning in
// words, the server's diagnostic message, and the underlying cause.
//
// LDAPError never contains a password or hash: binds are described by the
// account name only.
type LDAPError struct {
	// Op is the failed step: OpLocate, OpDial, OpTLS, OpRootDSE, OpBind,
	// OpSearch or OpValidate.
	Op string
	// Server is the host:port the discoverer talked to, when known.
	Server string
	// Code is the LDAP result code (RFC 4511 section 4.1.9), or -1 when the
	// failure was not an LDAP result (a network or TLS error).
	Code int
	// Meaning is the result code's name and, for Active Directory's
	// invalid-credentials sub-codes, the reason ("account locked out").
	Meaning string
	// Diagnostic is the server's diagnosticMessage, as sent.
	Diagnostic string
	// Err is the cause: a sentinel of this package, a network error, or a
	// TLS or x509 error. It is nil for an LDAP result without a sentinel.
	Err error
}

// Error describes the failure in one line.
func (e *LDAPError) Error() string {
	var b strings.Builder
	b.WriteString("adauth: ldap ")
	b.WriteString(e.Op)
	if e.Server != "" {
		b.WriteString(" ")
		b.WriteString(e.Server)
	}
	if e.Code >= 0 {
		fmt.Fprintf(&b, ": result %d (%s)", e.Code, e.Meaning)
		if e.Diagnostic != "" {
			fmt.Fprintf(&b, ": %q", e.Diagnostic)
		}
	} else if e.Meaning != "" {
		b.WriteString(": ")
		b.WriteString(e.Meaning)
	}
	if e.Err != nil && (e.Code < 0 || !isSentinel(e.Err)) {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *LDAPError) Unwrap() error { return e.Err }

// Is matches the sentinel that corresponds to the result code, so that an
// error carrying result 49 matches ErrInvalidCredentials even when its Err
// is something else.
func (e *LDAPError) Is(target error) bool {
	if e.Code < 0 {
		return false
	}
	s := codeSentinel(e.Code, e.Diagnostic)
	return s != nil && s == target
}

func isSentinel(err error) bool {
	switch err {
	case ErrTLS, ErrCertificate, ErrPlaintextRefused, ErrStrongAuthRequired,
		ErrConfidentialityRequired, ErrInvalidCredentials, ErrInsufficientAccess,
		ErrBindMethod, ErrNoDC, ErrProtocol, ErrBadConfig:
		return true
	}
	return false
}

// LDAP result codes this package names (RFC 4511 appendix A).
var resultNames = map[int]string{
	0:  "success",
	1:  "operations error",
	2:  "protocol error",
	3:  "time limit exceeded",
	4:  "size limit exceeded",
	7:  "authentication method not supported",
	8:  "strong authentication required",
	10: "referral",
	11: "administrative limit exceeded",
	12: "unavailable critical extension",
	13: "confidentiality required",
	14: "SASL bind in progress",
	16: "no such attribute",
	17: "undefined attribute type",
	18: "inappropriate matching",
	19: "constraint violation",
	21: "invalid attribute syntax",
	32: "no such object",
	34: "invalid DN syntax",
	48: "inappropriate authentication",
	49: "invalid credentials",
	50: "insufficient access rights",
	51: "busy",
	52: "unavailable",
	53: "unwilling to perform",
	54: "loop detected",
	80: "other",
}

// ResultMeaning returns the name of an LDAP result code ("invalid
// credentials"), or "result code N" for one this package does not name.
func ResultMeaning(code int) string {
	if s, ok := resultNames[code]; ok {
		return s
	}
	return "result code " + strconv.Itoa(code)
}

// Active Directory puts a Win32 error in its diagnostic message, as in
// "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error,
// data 52e, v4563". These are the sub-codes of invalid credentials.
var adDataCodes = map[string]string{
	"525": "user not found",
	"52e": "wrong password or unknown user",
	"530": "not permitted to log on at this time",
	"531": "not permitted to log on at this workstation",
	"532": "password expired",
	"533": "account disabled",
	"568": "too many security IDs",
	"701": "account expired",
	"773": "password must be changed",
	"775": "account locked out",
}

var adDataRE = regexp.MustCompile(`(?i)\bdata ([0-9a-f]{3,8})\b`)

// describeResult returns the meaning of code, refined by what an Active
// Directory diagnostic message says.
func describeResult(code int, diagnostic string) string {
	m := ResultMeaning(code)
	if code == 49 {
		if sub := adDataRE.FindStringSubmatch(diagnostic); sub != nil {
			if why, ok := adDataCodes[strings.ToLower(sub[1])]; ok {
				m += ": " + why
			}
		}
	}
	return m
}

// codeSentinel maps a result code to the sentinel errors.Is matches.
func codeSentinel(code int, diagnostic string) error {
	switch code {
	case 8:
		return ErrStrongAuthRequired
	case 13:
		return ErrConfidentialityRequired
	case 49:
		return ErrInvalidCredentials
	case 50:
		return ErrInsufficientAccess
	case 1:
		// Samba and AD refuse an unauthenticated search with operations
		// error and "a successful bind must be completed" (000004DC).
		d := strings.ToLower(diagnostic)
		// Samba says "00002020: Operation unavailable without
		// authentication".
		if strings.Contains(d, "successful bind") || strings.Contains(d, "000004dc") ||
			strings.Contains(d, "without authentication") {
			return ErrInsufficientAccess
		}
	case 2:
		return ErrProtocol
	}
	return nil
}

// resultError builds the LDAPError for an LDAP result.
func resultError(op, server string, code int, diagnostic string) *LDAPError {
	e := &LDAPError{Op: op, Server: server, Code: code, Meaning: describeResult(code, diagnostic), Diagnostic: diagnostic}
	e.Err = codeSentinel(code, diagnostic) // nil for codes without a sentinel
	return e
}

// tlsError wraps a handshake failure. Certificate problems wrap both
// ErrCertificate and the x509 error; Meaning names the problem.
func tlsError(server string, err error) *LDAPError {
	e := &LDAPError{Op: OpTLS, Server: server, Code: -1}
	var (
		hostErr      x509.HostnameError
		authErr      x509.UnknownAuthorityError
		invalidErr   x509.CertificateInvalidError
		constraintEr x509.ConstraintViolationError
	)
	switch {
	case errors.As(err, &hostErr):
		e.Meaning = "certificate is not valid for the server name " + strconv.Quote(hostErr.Host)
	case errors.As(err, &authErr):
		e.Meaning = "certificate signed by an unknown authority"
	case errors.As(err, &invalidErr):
		e.Meaning = "certificate invalid: " + invalidErr.Error()
	case errors.As(err, &constraintEr):
		e.Meaning = "certificate violates a constraint"
	default:
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			e.Meaning = "handshake failed"
			e.Err = &wrapErr{sentinel: ErrTLS, cause: err}
			return e
		}
		e.Meaning = "certificate rejected"
	}
	e.Err = &wrapErr{sentinel: ErrCertificate, also: ErrTLS, cause: err}
	return e
}

// wrapErr joins a sentinel (or two) with a cause, so that errors.Is finds
// the sentinels and errors.As finds the cause.
type wrapErr struct {
	sentinel, also error
	cause          error
}

func (w *wrapErr) Error() string {
	if w.cause == nil {
		return w.sentinel.Error()
	}
	return w.cause.Error()
}

func (w *wrapErr) Unwrap() []error {
	errs := []error{w.sentinel}
	if w.also != nil {
		errs = append(errs, w.also)
	}
	if w.cause != nil {
		errs = append(errs, w.cause)
	}
	return errs
}

// opError builds an LDAPError for a failure that is not an LDAP result.
func opError(op, server, meaning string, sentinel, cause error) *LDAPError {
	e := &LDAPError{Op: op, Server: server, Code: -1, Meaning: meaning}
	switch {
	case sentinel != nil:
		e.Err = &wrapErr{sentinel: sentinel, cause: cause}
	default:
		e.Err = cause
	}
	return e
}
