package smbconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// ErrBadChallenge is matched (errors.Is) by every error of ParseChallenge
// and FindChallenge: the input is not a well-formed NTLM CHALLENGE_MESSAGE.
var ErrBadChallenge = errors.New("smbconn: malformed NTLM challenge")

// ntlmSignature starts every NTLM message (MS-NLMP 2.2.1).
var ntlmSignature = []byte("NTLMSSP\x00")

// NTLM negotiate flags of interest (MS-NLMP 2.2.2.5).
const (
	ntlmNegotiateUnicode    = 0x00000001
	ntlmNegotiateTargetInfo = 0x00800000
	ntlmNegotiateVersion    = 0x02000000
)

// AV pair identifiers (MS-NLMP 2.2.2.1).
const (
	avEOL             = 0
	avNbComputerName  = 1
	avNbDomainName    = 2
	avDNSComputerName = 3
	avDNSDomainName   = 4
	avDNSTreeName     = 5
	avFlags           = 6
	avTimestamp       = 7
)

// OSVersion is the VERSION structure a server puts in its NTLM CHALLENGE
// (MS-NLMP 2.2.2.10): the Windows version, for example 10.0.20348. Samba
// reports the Windows version it imitates, not its own.
type OSVersion struct {
	Major, Minor uint8
	Build        uint16
	// NTLMRevision is NTLMRevisionCurrent, 15 on every current system.
	NTLMRevision uint8
}

// String formats the version as "major.minor.build".
func (v OSVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Build) }

// ChallengeInfo is what a server discloses about itself in its NTLM
// CHALLENGE_MESSAGE, before any credentials are checked. Every field is
// optional: a field the server did not send is empty (or nil).
type ChallengeInfo struct {
	// Flags are the server's NegotiateFlags.
	Flags uint32
	// TargetName is the domain (or computer, when not joined) the server
	// authenticates against.
	TargetName string
	// NetBIOSComputer and NetBIOSDomain are the MsvAvNbComputerName and
	// MsvAvNbDomainName AV pairs. On a workgroup computer the "domain" is
	// the computer's own name.
	NetBIOSComputer, NetBIOSDomain string
	// DNSComputer, DNSDomain and DNSTree are the MsvAvDnsComputerName,
	// MsvAvDnsDomainName and MsvAvDnsTreeName AV pairs.
	DNSComputer, DNSDomain, DNSTree string
	// Timestamp is the server's clock (MsvAvTimestamp), zero when absent.
	Timestamp time.Time
	// Version is the server's OS version, nil when it did not send one.
	Version *OSVersion
	// HasTargetInfo reports whether the challenge carried a TargetInfo
	// block at all. NTLMv2 needs it: a peer without it likely speaks only
	// NTLMv1 or LM.
	HasTargetInfo bool
}

// DomainJoined reports whether the server appears to be a member of a
// domain: its NetBIOS domain differs from its NetBIOS computer name. It
// returns false when either name is missing.
func (c ChallengeInfo) DomainJoined() bool {
	return c.NetBIOSComputer != "" && c.NetBIOSDomain != "" && !strings.EqualFold(c.NetBIOSComputer, c.NetBIOSDomain)
}

// LocalAccountDomain returns the domain under which an account local to
// the server (".\user") logs on with NTLM: the server's NetBIOS computer
// name (COMPUTER\user), which Windows and Samba check against their own
// accounts. An empty domain does not work: go-smb2 replaces it with the
// CHALLENGE's NetBIOS domain, go-msrpc sends it empty, and a domain member
// asks its domain in both cases, which knows no such account. It returns
// "" when the CHALLENGE names no computer; it does not validate the name.
// Auth.Local (SMB) and internal/rpcauth (RPC over TCP) both use it.
func (c ChallengeInfo) LocalAccountDomain() string { return c.NetBIOSComputer }

// ParseChallenge decodes an NTLM CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2) that
// starts at msg[0]. It validates every offset and length against msg and
// never panics; errors match ErrBadChallenge. It does not verify anything
// cryptographic and ignores the server challenge nonce.
func ParseChallenge(msg []byte) (ChallengeInfo, error) {
	var ci ChallengeInfo
	if len(msg) < 48 {
		return ci, fmt.Errorf("%w: %d bytes, need at least 48", ErrBadChallenge, len(msg))
	}
	if !bytes.Equal(msg[:8], ntlmSignature) {
		return ci, fmt.Errorf("%w: no NTLMSSP signature", ErrBadChallenge)
	}
	if t := binary.LittleEndian.Uint32(msg[8:]); t != 2 {
		return ci, fmt.Errorf("%w: message type %d, want 2", ErrBadChallenge, t)
	}
	ci.Flags = binary.LittleEndian.Uint32(msg[20:])
	name, err := ntlmField(msg, 12)
	if err != nil {
		return ci, fmt.Errorf("%w: target name: %v", ErrBadChallenge, err)
	}
	if ci.Flags&ntlmNegotiateUnicode != 0 {
		ci.TargetName, err = decodeUTF16(name)
		if err != nil {
			return ci, fmt.Errorf("%w: target name: %v", ErrBadChallenge, err)
		}
	} else {
		ci.TargetName = string(name)
	}
	info, err := ntlmField(msg, 40)
	if err != nil {
		return ci, fmt.Errorf("%w: target info: %v", ErrBadChallenge, err)
	}
	if len(info) > 0 {
		ci.HasTargetInfo = true
		if err := parseAVPairs(info, &ci); err != nil {
			return ci, err
		}
	}
	if ci.Flags&ntlmNegotiateVersion != 0 && len(msg) >= 56 {
		// The Version field sits at 48 only when the payload starts after
		// it; a server that sets the flag but puts payload at 48 sends
		// garbage there, so check the payload offsets first.
		if payloadStart(msg) >= 56 {
			ci.Version = &OSVersion{
				Major:        msg[48],
				Minor:        msg[49],
				Build:        binary.LittleEndian.Uint16(msg[50:]),
				NTLMRevision: msg[55],
			}
		}
	}
	return ci, nil
}

// FindChallenge looks for an NTLM CHALLENGE_MESSAGE anywhere in b (for
// example inside a SPNEGO negTokenResp or a whole SMB2 SESSION_SETUP
// response) and parses it with ParseChallenge. Offsets in an NTLM message
// are relative to its signature, so no outer framing needs decoding.
func FindChallenge(b []byte) (ChallengeInfo, error) {
	sig := append(append([]byte(nil), ntlmSignature...), 2, 0, 0, 0)
	i := bytes.Index(b, sig)
	if i < 0 {
		return ChallengeInfo{}, fmt.Errorf("%w: no CHALLENGE_MESSAGE found", ErrBadChallenge)
	}
	return ParseChallenge(b[i:])
}

// payloadStart returns the smallest non-empty payload offset of the
// target-name and target-info fields, or len(msg) when both are empty.
func payloadStart(msg []byte) int {
	start := len(msg)
	for _, at := range []int{12, 40} {
		l := int(binary.LittleEndian.Uint16(msg[at:]))
		off := int(binary.LittleEndian.Uint32(msg[at+4:]))
		if l > 0 && off < start {
			start = off
		}
	}
	return start
}

// ntlmField returns the payload that the 8-byte field descriptor at `at`
// (Len uint16, MaxLen uint16, Offset uint32) points to.
func ntlmField(msg []byte, at int) ([]byte, error) {
	l := int(binary.LittleEndian.Uint16(msg[at:]))
	off := uint64(binary.LittleEndian.Uint32(msg[at+4:]))
	if l == 0 {
		return nil, nil
	}
	if off+uint64(l) > uint64(len(msg)) {
		return nil, fmt.Errorf("offset %d length %d beyond %d bytes", off, l, len(msg))
	}
	return msg[off : off+uint64(l)], nil
}

func parseAVPairs(b []byte, ci *ChallengeInfo) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("%w: truncated AV pair header", ErrBadChallenge)
		}
		id := binary.LittleEndian.Uint16(b)
		l := int(binary.LittleEndian.Uint16(b[2:]))
		b = b[4:]
		if id == avEOL {
			return nil
		}
		if l > len(b) {
			return fmt.Errorf("%w: AV pair %d length %d beyond %d bytes", ErrBadChallenge, id, l, len(b))
		}
		v := b[:l]
		b = b[l:]
		var dst *string
		switch id {
		case avNbComputerName:
			dst = &ci.NetBIOSComputer
		case avNbDomainName:
			dst = &ci.NetBIOSDomain
		case avDNSComputerName:
			dst = &ci.DNSComputer
		case avDNSDomainName:
			dst = &ci.DNSDomain
		case avDNSTreeName:
			dst = &ci.DNSTree
		case avTimestamp:
			if l != 8 {
				return fmt.Errorf("%w: timestamp of %d bytes", ErrBadChallenge, l)
			}
			ci.Timestamp = fileTime(binary.LittleEndian.Uint64(v))
		}
		if dst != nil {
			s, err := decodeUTF16(v)
			if err != nil {
				return fmt.Errorf("%w: AV pair %d: %v", ErrBadChallenge, id, err)
			}
			*dst = s
		}
	}
	// A list without MsvAvEOL is tolerated: some stacks omit it.
	return nil
}

func decodeUTF16(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", errors.New("odd UTF-16 length")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u)), nil
}

// fileTime converts a Windows FILETIME (100 ns since 1601) to a time.Time,
// or the zero time for 0.
func fileTime(ft uint64) time.Time {
	if ft == 0 {
		return time.Time{}
	}
	const epochDiff = 116444736000000000 // 1601-01-01 to 1970-01-01 in 100 ns
	if ft < epochDiff {
		return time.Time{}
	}
	d := ft - epochDiff
	return time.Unix(int64(d/1e7), int64(d%1e7)*100).UTC()
}
