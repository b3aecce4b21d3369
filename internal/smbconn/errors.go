package smbconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	smb2 "github.com/oiweiwei/go-smb2.fork"

	"github.com/lanconnect/lanconnect/diag"
)

// NTStatus is an NTSTATUS code sent by an SMB server (MS-ERREF 2.3). It is
// an error, so a server status can be matched with errors.Is, for example
// errors.Is(err, smbconn.StatusLogonFailure).
type NTStatus uint32

// NT status codes that this package and its callers tell apart.
const (
	StatusSuccess                NTStatus = 0x00000000
	StatusPending                NTStatus = 0x00000103
	StatusMoreProcessingRequired NTStatus = 0xC0000016
	StatusInvalidParameter       NTStatus = 0xC000000D
	StatusEndOfFile              NTStatus = 0xC0000011
	StatusAccessDenied           NTStatus = 0xC0000022
	StatusObjectNameNotFound     NTStatus = 0xC0000034
	StatusObjectNameCollision    NTStatus = 0xC0000035
	StatusObjectPathNotFound     NTStatus = 0xC000003A
	StatusSharingViolation       NTStatus = 0xC0000043
	StatusNoLogonServers         NTStatus = 0xC000005E
	StatusNoSuchUser             NTStatus = 0xC0000064
	StatusWrongPassword          NTStatus = 0xC000006A
	StatusLogonFailure           NTStatus = 0xC000006D
	StatusAccountRestriction     NTStatus = 0xC000006E
	StatusInvalidLogonHours      NTStatus = 0xC000006F
	StatusInvalidWorkstation     NTStatus = 0xC0000070
	StatusPasswordExpired        NTStatus = 0xC0000071
	StatusAccountDisabled        NTStatus = 0xC0000072
	StatusDiskFull               NTStatus = 0xC000007F
	StatusPipeNotAvailable       NTStatus = 0xC00000AC
	StatusNotSupported           NTStatus = 0xC00000BB
	StatusBadNetworkPath         NTStatus = 0xC00000BE
	StatusNetworkNameDeleted     NTStatus = 0xC00000C9
	StatusNetworkAccessDenied    NTStatus = 0xC00000CA
	StatusBadNetworkName         NTStatus = 0xC00000CC
	StatusCannotDelete           NTStatus = 0xC0000121
	StatusFileClosed             NTStatus = 0xC0000128
	StatusPipeBroken             NTStatus = 0xC000014B
	StatusLogonTypeNotGranted    NTStatus = 0xC000015B
	StatusTrustFailure           NTStatus = 0xC000018D
	StatusAccountExpired         NTStatus = 0xC0000193
	StatusUserSessionDeleted     NTStatus = 0xC0000203
	StatusPasswordMustChange     NTStatus = 0xC0000224
	StatusAccountLockedOut       NTStatus = 0xC0000234
	StatusNetworkSessionExpired  NTStatus = 0xC000035C
	StatusDowngradeDetected      NTStatus = 0xC0000388
	StatusNTLMBlocked            NTStatus = 0xC0000418
)

// String returns the symbolic name (diag.NTStatus), or "NTSTATUS 0x..."
// when unknown.
func (s NTStatus) String() string {
	name, _ := diag.NTStatus(uint32(s))
	return name
}

// Error returns "smb server: " and the name, code and meaning for a
// technician (diag.NTStatusText), for example "smb server:
// STATUS_LOGON_FAILURE (0xC000006D): the user name or password is wrong".
func (s NTStatus) Error() string { return "smb server: " + diag.NTStatusText(uint32(s)) }

// Errors that Dial and the Session methods return (wrapped; match with
// errors.Is).
var (
	// ErrUnreachable is matched by every *DialError: no TCP connection to
	// the SMB port could be made.
	ErrUnreachable = errors.New("smbconn: host unreachable")
	// ErrRefused means the host answered the TCP SYN with a reset: nothing
	// listens on the port, or a firewall rejects actively.
	ErrRefused = errors.New("smbconn: connection refused")
	// ErrFiltered means the TCP connection attempt timed out: a firewall
	// drops the packets silently, or the host is down.
	ErrFiltered = errors.New("smbconn: connection attempt timed out (filtered)")
	// ErrNoRoute means the network stack reported the host or network
	// unreachable (no route, no ARP answer).
	ErrNoRoute = errors.New("smbconn: no route to host")
	// ErrResolve means the host name could not be resolved.
	ErrResolve = errors.New("smbconn: cannot resolve host name")

	// ErrGuest means the server logged the session on as Guest (or
	// anonymously) instead of as the given account. Such a session is not
	// signed by go-smb2, so Dial refuses it unless Options.AllowGuest.
	ErrGuest = errors.New("smbconn: server granted a guest session")
	// ErrEncryptionUnavailable means encryption was required but the
	// server did not agree to encrypt the session (SMB 2.x, or no cipher).
	ErrEncryptionUnavailable = errors.New("smbconn: server does not offer SMB encryption")
	// ErrSigning means a signature was missing or wrong on a message that
	// had to be signed.
	ErrSigning = errors.New("smbconn: SMB signing failure")
	// ErrProtocol means the server sent something that is not a valid
	// SMB2/3 answer (for example an SMB1-only server).
	ErrProtocol = errors.New("smbconn: SMB protocol error")
	// ErrConnLost means the connection was closed or reset by the peer.
	ErrConnLost = errors.New("smbconn: connection lost")
	// ErrClosed means the Session or Pipe was closed by its owner.
	ErrClosed = errors.New("smbconn: closed")
	// ErrBadInput means an argument was invalid (empty host, bad share
	// or pipe name, no user).
	ErrBadInput = errors.New("smbconn: invalid argument")
)

// DialReason says how a TCP connection attempt failed.
type DialReason int

// The dial failure reasons.
const (
	DialOther   DialReason = iota // any other failure
	DialRefused                   // TCP RST: port closed
	DialTimeout                   // no answer: filtered or down
	DialNoRoute                   // EHOSTUNREACH / ENETUNREACH
	DialResolve                   // name resolution failed
)

// String names the reason.
func (r DialReason) String() string {
	switch r {
	case DialRefused:
		return "refused"
	case DialTimeout:
		return "timeout"
	case DialNoRoute:
		return "no-route"
	case DialResolve:
		return "resolve"
	}
	return "other"
}

// DialError is a failed TCP connection to the SMB port. It matches
// ErrUnreachable and, by Reason, ErrRefused, ErrFiltered, ErrNoRoute or
// ErrResolve.
type DialError struct {
	Addr   string
	Reason DialReason
	Err    error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("smbconn: connect to %s: %s: %v", e.Addr, e.Reason, e.Err)
}

// Unwrap returns the underlying network error.
func (e *DialError) Unwrap() error { return e.Err }

// Is matches ErrUnreachable and the sentinel of Reason.
func (e *DialError) Is(target error) bool {
	switch target {
	case ErrUnreachable:
		return true
	case ErrRefused:
		return e.Reason == DialRefused
	case ErrFiltered:
		return e.Reason == DialTimeout
	case ErrNoRoute:
		return e.Reason == DialNoRoute
	case ErrResolve:
		return e.Reason == DialResolve
	}
	return false
}

// ClassifyDial returns err, the failure of a TCP connection attempt to
// addr (any port), as a *DialError whose Reason says how it failed:
// refused (a reset), no route, name resolution, or a timeout (no answer:
// filtered or down). It does not look at the context the dial ran under;
// a caller that cancelled it tells that apart itself.
func ClassifyDial(addr string, err error) *DialError {
	de := &DialError{Addr: addr, Err: err}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		de.Reason = DialRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		de.Reason = DialNoRoute
	case errors.As(err, &dnsErr):
		de.Reason = DialResolve
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		de.Reason = DialTimeout
	}
	return de
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Error is a failed SMB operation on a host. Err says why (an NTStatus,
// a *DialError, or one of this package's sentinel errors); Info holds
// what the server revealed before the failure, such as its NTLM target
// info, which a caller needs to diagnose a logon failure.
type Error struct {
	Op   string // "dial", "negotiate", "session setup", "tree connect", "open pipe", ...
	Host string
	Info Info
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("smbconn: %s %s: %v", e.Op, e.Host, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// mapErr converts an error of go-smb2 into this package's typed errors.
// lastStatus is the status of the response the error came from, when the
// caller knows it (go-smb2 sometimes keeps it only in a message).
func mapErr(err error, lastStatus NTStatus) error {
	if err == nil {
		return nil
	}
	var re *smb2.ResponseError
	var ce *smb2.ContextError
	var te *smb2.TransportError
	var ie *smb2.InvalidResponseError
	var pe *os.PathError
	switch {
	case errors.As(err, &re):
		return NTStatus(re.Code)
	case errors.As(err, &ce):
		return ce.Err
	case errors.As(err, &te):
		if errors.Is(te.Err, ErrProtocol) || errors.Is(te.Err, ErrDowngrade) {
			return te.Err
		}
		if errors.Is(te.Err, net.ErrClosed) {
			return fmt.Errorf("%w: %v", ErrClosed, te.Err)
		}
		if errors.Is(te.Err, io.EOF) || errors.Is(te.Err, io.ErrUnexpectedEOF) || errors.Is(te.Err, syscall.ECONNRESET) || errors.Is(te.Err, syscall.EPIPE) {
			return fmt.Errorf("%w: %v", ErrConnLost, te.Err)
		}
		if isTimeout(te.Err) {
			return fmt.Errorf("%w: %v", context.DeadlineExceeded, te.Err)
		}
		return fmt.Errorf("%w: %v", ErrConnLost, te.Err)
	case errors.As(err, &ie):
		if lastStatus != StatusSuccess && lastStatus != StatusMoreProcessingRequired && lastStatus != StatusPending {
			return lastStatus
		}
		if strings.Contains(ie.Message, "signing") || strings.Contains(ie.Message, "unverified") {
			return fmt.Errorf("%w: %s", ErrSigning, ie.Message)
		}
		if strings.Contains(ie.Message, "guest") || strings.Contains(ie.Message, "anonymous") {
			return fmt.Errorf("%w: %s", ErrGuest, ie.Message)
		}
		return fmt.Errorf("%w: %s", ErrProtocol, ie.Message)
	case err == os.ErrNotExist:
		return &FSError{Err: err, Statuses: []NTStatus{StatusObjectNameNotFound, StatusObjectPathNotFound}}
	case err == os.ErrExist:
		return &FSError{Err: err, Statuses: []NTStatus{StatusObjectNameCollision}}
	case err == os.ErrPermission:
		return &FSError{Err: err, Statuses: []NTStatus{StatusAccessDenied, StatusCannotDelete}}
	case errors.As(err, &pe) && pe.Err != nil && pe.Err != err:
		// Keep the path (it is ours, never a secret) and map the cause.
		return &os.PathError{Op: pe.Op, Path: pe.Path, Err: mapErr(pe.Err, lastStatus)}
	case err.Error() == "connection is closed":
		return fmt.Errorf("%w: %v", ErrConnLost, err)
	}
	return err
}

// MapError converts an error returned by go-smb2 (for example by a Share
// from Session.Mount) into this package's typed errors: an NTStatus, a
// context error, ErrConnLost, ErrClosed, ErrSigning or ErrProtocol, with
// os.PathError kept around the cause. Other errors pass unchanged.
func MapError(err error) error { return mapErr(err, 0) }

// FSError is a server status that go-smb2 reports as an os error
// (os.ErrNotExist, os.ErrExist or os.ErrPermission) without the status
// itself. It matches both: errors.Is(err, os.ErrNotExist) and
// errors.Is(err, StatusObjectNameNotFound) are true for a missing file.
type FSError struct {
	Err      error      // os.ErrNotExist, os.ErrExist or os.ErrPermission
	Statuses []NTStatus // the statuses go-smb2 folds into Err
}

func (e *FSError) Error() string { return e.Err.Error() }

// Unwrap returns the os error.
func (e *FSError) Unwrap() error { return e.Err }

// Is matches any of Statuses.
func (e *FSError) Is(target error) bool {
	st, ok := target.(NTStatus)
	if !ok {
		return false
	}
	for _, s := range e.Statuses {
		if s == st {
			return true
		}
	}
	return false
}
