package smbprobe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// maxMessage bounds what the probe reads of one response.
const maxMessage = 1 << 16

// Info is what one probe learned about a host.
type Info struct {
	Addr            netip.Addr
	Dialect         uint16 // negotiated dialect revision, e.g. 0x0311
	SigningRequired bool
	// Server is what the NTLM CHALLENGE disclosed, in the terms of
	// adauth.Facts.Server: NetBIOS and DNS names, domain and forest, OS
	// version, clock, and whether it looks domain-joined. Its fields are
	// empty when the server sent no NTLM challenge (for example a
	// Kerberos-only server). It is the server's claim, unauthenticated.
	Server adauth.ServerInfo
	// Elapsed is the time from dial to the parsed challenge.
	Elapsed time.Duration
}

// Prober probes one host at a time. The zero value dials TCP 445 with a
// 3-second deadline per host.
type Prober struct {
	// Port is the TCP port; zero means 445.
	Port uint16
	// Timeout bounds one probe, dial included; zero means 3 s.
	Timeout time.Duration
	// Dialer dials the connection; nil means a net.Dialer.
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}

	trace func(resp []byte) // tests: sees every response, to capture vectors
}

// Probe negotiates SMB2 with addr, sends an anonymous NTLM NEGOTIATE and
// returns what the server disclosed. It closes the connection before it
// returns. Errors: a *net.OpError when nothing answers on the port, an
// error matching ErrMalformed for a broken answer, a *StatusError when the
// server refuses, or ctx's error.
func (p *Prober) Probe(ctx context.Context, addr netip.Addr) (Info, error) {
	start := time.Now()
	to := p.Timeout
	if to <= 0 {
		to = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	port := p.Port
	if port == 0 {
		port = 445
	}
	var d interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	} = &net.Dialer{}
	if p.Dialer != nil {
		d = p.Dialer
	}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr.String(), strconv.Itoa(int(port))))
	if err != nil {
		return Info{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var guid [16]byte
	var salt [32]byte
	_, _ = rand.Read(guid[:])
	_, _ = rand.Read(salt[:])
	msg, err := roundTrip(c, negotiateRequest(guid, salt), p.trace)
	if err != nil {
		return Info{}, ctxErr(ctx, err)
	}
	neg, err := ParseNegotiateResponse(msg)
	if err != nil {
		return Info{}, err
	}
	info := Info{Addr: addr, Dialect: neg.Dialect, SigningRequired: neg.SigningRequired}
	msg, err = roundTrip(c, sessionSetupRequest(spnegoInit(ntlmNegotiate())), p.trace)
	if err != nil {
		return info, ctxErr(ctx, err)
	}
	buf, err := parseSessionSetupResponse(msg)
	if err != nil {
		return info, err
	}
	if err := challengeInto(&info, buf); err != nil {
		return info, err
	}
	info.Elapsed = time.Since(start)
	return info, nil
}

// challengeInto finds and parses the NTLM CHALLENGE in a SESSION_SETUP
// security buffer (raw or inside SPNEGO).
func challengeInto(info *Info, buf []byte) error {
	ch, err := smbconn.FindChallenge(buf)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	info.Server = adauth.ServerInfo{
		NetBIOSName: ch.NetBIOSComputer, NetBIOSDomain: ch.NetBIOSDomain,
		DNSName: ch.DNSComputer, DNSDomain: ch.DNSDomain, DNSForest: ch.DNSTree,
		DomainJoined: ch.DomainJoined(), Time: ch.Timestamp,
	}
	if ch.Version != nil {
		info.Server.OSVersion = ch.Version.String()
	}
	return nil
}

// ctxErr prefers the context's error over the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// roundTrip writes one SMB2 message with its 4-byte transport header and
// reads one back (without the header).
func roundTrip(c net.Conn, req []byte, trace func([]byte)) ([]byte, error) {
	frame := make([]byte, 4+len(req))
	binary.BigEndian.PutUint32(frame, uint32(len(req)))
	copy(frame[4:], req)
	if _, err := c.Write(frame); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != 0 {
		return nil, malformed(fmt.Sprintf("transport header type 0x%02x", hdr[0]), -1)
	}
	n := int(binary.BigEndian.Uint32(hdr[:]) & 0xFFFFFF)
	if n > maxMessage {
		return nil, malformed(fmt.Sprintf("response of %d bytes exceeds %d", n, maxMessage), -1)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(c, msg); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, malformed("response cut short", -1)
		}
		return nil, err
	}
	if trace != nil {
		trace(msg)
	}
	return msg, nil
}
