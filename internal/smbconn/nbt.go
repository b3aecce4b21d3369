package smbconn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/lanconnect/lanconnect/netbios"
)

// Transport is how a Session's SMB2/3 messages travel to the server.
type Transport string

// The transports (MS-SMB2 2.1). The strings are a contract: they appear
// as they are in adauth.Facts and in the NDJSON of examples/connect.
const (
	// TransportDirect is Direct TCP on port 445: the default.
	TransportDirect Transport = "tcp445"
	// TransportNetBIOS is the NetBIOS session service on port 139 (RFC
	// 1002 section 4.3): a SESSION REQUEST opens the session, then the
	// same SMB2/3 messages follow in NetBIOS SESSION MESSAGE frames.
	TransportNetBIOS Transport = "nbt139"
)

// SMBServerName is the called name a NetBIOS SESSION REQUEST uses when the
// server's own NetBIOS name is not known: Windows and Samba accept it for
// their file server (suffix 0x20).
const SMBServerName = "*SMBSERVER"

// NetBIOS session service packet types (RFC 1002 section 4.3.1).
const (
	nbtSessionMessage  = 0x00
	nbtSessionRequest  = 0x81
	nbtPositive        = 0x82
	nbtNegative        = 0x83
	nbtRetarget        = 0x84
	nbtKeepAlive       = 0x85
	nbtDefaultPort     = 139
	nbtMaxResponseBody = 6 // a RETARGET: IP address and port
)

// NBTCode is the error code of a NEGATIVE SESSION RESPONSE (RFC 1002
// section 4.3.4).
type NBTCode byte

// The NEGATIVE SESSION RESPONSE codes.
const (
	NBTNotListeningOnCalled  NBTCode = 0x80 // not listening on the called name
	NBTNotListeningOnCalling NBTCode = 0x81 // not listening for the calling name
	NBTCalledNotPresent      NBTCode = 0x82 // the called name is not present
	NBTInsufficientResources NBTCode = 0x83 // the called name is present, but no resources
	NBTUnspecified           NBTCode = 0x8F // unspecified error
)

// String names the code as RFC 1002 does.
func (c NBTCode) String() string {
	switch c {
	case NBTNotListeningOnCalled:
		return "not listening on called name"
	case NBTNotListeningOnCalling:
		return "not listening for calling name"
	case NBTCalledNotPresent:
		return "called name not present"
	case NBTInsufficientResources:
		return "called name present, but insufficient resources"
	case NBTUnspecified:
		return "unspecified error"
	}
	return fmt.Sprintf("code 0x%02x", byte(c))
}

// ErrNBTSession is matched by every *NBTSessionError: the server's
// NetBIOS session service refused the SESSION REQUEST (a NEGATIVE SESSION
// RESPONSE) or sent the caller elsewhere (a RETARGET).
var ErrNBTSession = errors.New("smbconn: NetBIOS session refused")

// NBTSessionError is a SESSION REQUEST that did not open a session. Code
// is set for a NEGATIVE SESSION RESPONSE; Retarget is set for a RETARGET
// SESSION RESPONSE, which Dial does not follow (a host that redirects the
// session elsewhere gets no second connection from this package).
type NBTSessionError struct {
	Addr       string // ip:port the request went to
	CalledName string // the called name, without its suffix
	Code       NBTCode
	Retarget   netip.AddrPort
}

func (e *NBTSessionError) Error() string {
	if e.Retarget.IsValid() {
		return fmt.Sprintf("smbconn: NetBIOS session to %s as %q: the server retargets to %v (not followed)", e.Addr, e.CalledName, e.Retarget)
	}
	return fmt.Sprintf("smbconn: NetBIOS session to %s as %q refused: %v", e.Addr, e.CalledName, e.Code)
}

// Is makes errors.Is(err, ErrNBTSession) true.
func (e *NBTSessionError) Is(target error) bool { return target == ErrNBTSession }

// CalledName returns the NetBIOS name to call for a server known as name
// (a NetBIOS name, a DNS name or an address): the first DNS label when it
// fits NetBIOS's 15 bytes, upper-cased, else SMBServerName. An IP address
// literal or an empty name gives SMBServerName. It does not resolve
// anything: the server's NetBIOS name may differ from its DNS label, in
// which case Dial retries with SMBServerName.
func CalledName(name string) string {
	name = strings.TrimSpace(strings.TrimSuffix(name, "."))
	if name == "" {
		return SMBServerName
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return SMBServerName
	}
	label, _, _ := strings.Cut(name, ".")
	if label == "" || len(label) > 15 || strings.ContainsAny(label, " \\/:*?\"<>|") {
		return SMBServerName
	}
	return strings.ToUpper(label)
}

// sessionRequest builds a SESSION REQUEST packet for called (suffix 0x20,
// the server service) from calling (suffix 0x00).
func sessionRequest(called, calling string) ([]byte, error) {
	cn, err := netbios.NewName(called, netbios.SuffixFileServer)
	if err != nil {
		return nil, fmt.Errorf("%w: called name: %v", ErrBadInput, err)
	}
	ln, err := netbios.NewName(calling, netbios.SuffixWorkstation)
	if err != nil {
		return nil, fmt.Errorf("%w: calling name: %v", ErrBadInput, err)
	}
	a, err := cn.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: called name: %v", ErrBadInput, err)
	}
	b, err := ln.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: calling name: %v", ErrBadInput, err)
	}
	body := append(a, b...)
	pkt := make([]byte, 4, 4+len(body))
	pkt[0] = nbtSessionRequest
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(body)))
	return append(pkt, body...), nil
}

// nbtOpen sends a SESSION REQUEST on c and reads the answer. It returns
// nil on a POSITIVE SESSION RESPONSE, an *NBTSessionError on a NEGATIVE or
// RETARGET one, and ErrProtocol on anything else. The deadline bounds the
// exchange; it leaves no deadline set on c.
func nbtOpen(c net.Conn, called, calling string, deadline time.Time) error {
	req, err := sessionRequest(called, calling)
	if err != nil {
		return err
	}
	_ = c.SetDeadline(deadline)
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := c.Write(req); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the server closed the NetBIOS session service connection without an answer", ErrProtocol)
		}
		return err
	}
	n := int(hdr[1]&1)<<16 | int(binary.BigEndian.Uint16(hdr[2:]))
	if hdr[1]&^1 != 0 || n > nbtMaxResponseBody {
		return fmt.Errorf("%w: malformed NetBIOS session response (type 0x%02x, flags 0x%02x, length %d)", ErrProtocol, hdr[0], hdr[1], n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		return fmt.Errorf("%w: short NetBIOS session response: %v", ErrProtocol, err)
	}
	addr := c.RemoteAddr().String()
	switch {
	case hdr[0] == nbtPositive && n == 0:
		return nil
	case hdr[0] == nbtNegative && n == 1:
		return &NBTSessionError{Addr: addr, CalledName: called, Code: NBTCode(body[0])}
	case hdr[0] == nbtRetarget && n == 6:
		ip := netip.AddrFrom4([4]byte(body[:4]))
		return &NBTSessionError{Addr: addr, CalledName: called, Retarget: netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[4:]))}
	}
	return fmt.Errorf("%w: unexpected NetBIOS session response (type 0x%02x, length %d)", ErrProtocol, hdr[0], n)
}

// dialNBT connects to addr and opens a NetBIOS session to called. When
// the server refuses called as a name it does not serve (codes 0x80 and
// 0x82) and called is not SMBServerName, it connects again and calls
// SMBServerName, as Windows clients do. The name is not an identity
// check: the server's NTLM CHALLENGE is (Options.ExpectName).
func dialNBT(ctx context.Context, dial func(context.Context) (net.Conn, error), called, calling string, deadline time.Time, logger interface {
	Debug(string, ...any)
}) (net.Conn, string, error) {
	names := []string{called}
	if !strings.EqualFold(called, SMBServerName) {
		names = append(names, SMBServerName)
	}
	var last error
	for _, name := range names {
		c, err := dial(ctx)
		if err != nil {
			return nil, name, err
		}
		stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
		err = nbtOpen(c, name, calling, deadline)
		if !stop() {
			_ = c.Close()
			return nil, name, ctx.Err()
		}
		if err == nil {
			return c, name, nil
		}
		_ = c.Close()
		last = err
		var ne *NBTSessionError
		if !errors.As(err, &ne) || (ne.Code != NBTNotListeningOnCalled && ne.Code != NBTCalledNotPresent) {
			return nil, name, err
		}
		logger.Debug("netbios session refused the called name", "called", name, "code", ne.Code)
	}
	return nil, names[len(names)-1], last
}

// callingName returns a valid calling name for workstation: its first
// label, cut to 15 bytes, or "LANCONNECT".
func callingName(workstation string) string {
	label, _, _ := strings.Cut(strings.TrimSpace(workstation), ".")
	if len(label) > 15 {
		label = label[:15]
	}
	if label == "" || strings.ContainsAny(label, " \\/:*?\"<>|") || label == "*" {
		return "LANCONNECT"
	}
	return label
}
