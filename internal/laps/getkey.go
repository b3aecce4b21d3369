package laps

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/msrpc/dtyp"
	"github.com/oiweiwei/go-msrpc/msrpc/gkdi/isdkey/v1"

	"github.com/lanconnect/lanconnect/internal/rpcauth"
)

// KeySource gets the group key envelope for a target security descriptor
// and a key identifier's root key and indexes: MS-GKDI GetKey.
// KeyClient is the real one; tests may serve envelopes from a RootKey.
type KeySource interface {
	GetKey(ctx context.Context, targetSD []byte, rootKeyID GUID, l0, l1, l2 int32) (*GroupKeyEnvelope, error)
}

// HRESULTs GetKey answers with.
const (
	hresultAccessDenied = 0x80070005 // E_ACCESSDENIED
)

// HResultError is a failing GetKey return value.
type HResultError uint32

func (e HResultError) Error() string {
	switch uint32(e) {
	case hresultAccessDenied:
		return "GetKey: E_ACCESSDENIED (0x80070005)"
	}
	return fmt.Sprintf("GetKey: HRESULT 0x%08x", uint32(e))
}

// KeyClient calls MS-GKDI GetKey on a domain controller: ncacn_ip_tcp on
// the port the DC's endpoint mapper names for ISDKey, NTLM at packet
// privacy with its own credentials (never go-msrpc's global store), and
// the response integrity check that rpcauth restores. The zero value is
// not usable: set Host and Credentials.
//
// It does not locate DCs, use Kerberos, cache keys or retry; one GetKey
// is one connection, closed before GetKey returns.
type KeyClient struct {
	// Host is the DC's address or name.
	Host string
	// EPMPort is the endpoint mapper's port; 0 means 135.
	EPMPort int
	// Credentials are the technician's account (a member of the
	// authorised group can decrypt).
	Credentials rpcauth.Credentials
	// ServerName, when set, is the computer name the DC's NTLM CHALLENGE
	// must announce (see rpcauth.OptionsFor).
	ServerName string
	// Dialer dials TCP; nil means rpcauth.TCPDialer.
	Dialer dcerpc.Dialer
	// Timeout bounds the whole call when the context has no earlier
	// deadline; 0 means 30 s.
	Timeout time.Duration
	// Logger receives one line per call (never keys or credentials); nil
	// discards.
	Logger *slog.Logger
}

// ErrGetKey is matched by KeyClient's transport and protocol failures
// (as opposed to a refusal, which matches ErrDecryptionRefused).
var ErrGetKey = errors.New("laps: GetKey failed")

type getKeyError struct {
	addr string
	err  error
}

func (e *getKeyError) Error() string {
	return fmt.Sprintf("laps: GetKey at %s: %v", e.addr, e.err)
}
func (e *getKeyError) Unwrap() []error { return []error{ErrGetKey, e.err} }

// GetKey asks the DC for the group key. A refusal (E_ACCESSDENIED)
// returns an error that matches ErrDecryptionRefused; the caller adds the
// authorised SID (see Decrypt).
func (c *KeyClient) GetKey(ctx context.Context, targetSD []byte, rootKeyID GUID, l0, l1, l2 int32) (*GroupKeyEnvelope, error) {
	to := c.Timeout
	if to <= 0 {
		to = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	epmPort := c.EPMPort
	if epmPort == 0 {
		epmPort = 135
	}
	d := c.Dialer
	if d == nil {
		d = &rpcauth.TCPDialer{}
	}
	fail := func(addr string, err error) (*GroupKeyEnvelope, error) {
		log.Debug("laps: GetKey failed", "dc", addr, "err", err)
		return nil, &getKeyError{addr: addr, err: err}
	}
	epAddr := net.JoinHostPort(c.Host, strconv.Itoa(epmPort))
	port, err := rpcauth.MapTCP(ctx, d, c.Host, epmPort, isdkey.ISDKeySyntaxV1_0)
	if err != nil {
		return fail("the endpoint mapper at "+epAddr, err)
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(port))
	opts, err := rpcauth.OptionsFor(c.Credentials, rpcauth.Privacy, c.ServerName)
	if err != nil {
		return fail(addr, err)
	}
	cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+rpcauth.BindingHost(c.Host)+"["+strconv.Itoa(port)+"]",
		dcerpc.WithDialer(d), dcerpc.WithNewTransport())
	if err != nil {
		return fail(addr, err)
	}
	defer cc.Close(context.WithoutCancel(ctx))
	cli, err := isdkey.NewISDKeyClient(ctx, cc, opts...)
	if err != nil {
		return fail(addr, fmt.Errorf("bind ISDKey: %w", err))
	}
	resp, err := cli.GetKey(ctx, &isdkey.GetKeyRequest{
		TargetSDLength: uint32(len(targetSD)),
		TargetSD:       targetSD,
		RootKeyID:      guidToDtyp(rootKeyID),
		L0KeyID:        l0, L1KeyID: l1, L2KeyID: l2,
	})
	if err != nil {
		// go-msrpc reports a failing HRESULT as the call's error.
		switch st, ok := rpcauth.FaultStatus(err); {
		case ok && st == hresultAccessDenied:
			log.Debug("laps: GetKey refused", "dc", addr)
			return nil, fmt.Errorf("%w: %w", ErrDecryptionRefused, HResultError(st))
		case ok && st == 5:
			// A fault of 5 (not the HRESULT) follows a failed NTLM
			// AUTHENTICATE: the DC did not accept the account.
			return fail(addr, fmt.Errorf("the domain controller did not accept the account's logon: %w", err))
		case ok && st&0x80000000 != 0:
			return fail(addr, HResultError(st))
		}
		return fail(addr, err)
	}
	if resp.Return != 0 {
		hr := HResultError(uint32(resp.Return))
		if uint32(resp.Return) == hresultAccessDenied {
			log.Debug("laps: GetKey refused", "dc", addr)
			return nil, fmt.Errorf("%w: %w", ErrDecryptionRefused, hr)
		}
		return fail(addr, hr)
	}
	if int(resp.OutLength) != len(resp.Out) {
		return fail(addr, fmt.Errorf("%w: answer says %d bytes, carries %d", ErrMalformed, resp.OutLength, len(resp.Out)))
	}
	env, err := ParseGroupKeyEnvelope(resp.Out)
	clear(resp.Out)
	if err != nil {
		return fail(addr, err)
	}
	log.Debug("laps: GetKey", "dc", addr, "root_key", env.RootKeyID.String(), "l0", env.L0, "l1", env.L1, "l2", env.L2)
	return env, nil
}

func guidToDtyp(g GUID) *dtyp.GUID {
	return &dtyp.GUID{
		Data1: binary.LittleEndian.Uint32(g[0:]),
		Data2: binary.LittleEndian.Uint16(g[4:]),
		Data3: binary.LittleEndian.Uint16(g[6:]),
		Data4: append([]byte(nil), g[8:]...),
	}
}

// GUIDFromDtyp converts go-msrpc's GUID to the wire form.
func GUIDFromDtyp(d *dtyp.GUID) GUID {
	var g GUID
	if d == nil {
		return g
	}
	binary.LittleEndian.PutUint32(g[0:], d.Data1)
	binary.LittleEndian.PutUint16(g[4:], d.Data2)
	binary.LittleEndian.PutUint16(g[6:], d.Data3)
	copy(g[8:], d.Data4)
	return g
}

// Decrypt gets the group key for e's blob from src and decrypts it into
// the password. A refusal returns a *RefusedError that names the SID the
// blob was encrypted for. expiration is msLAPS-PasswordExpirationTime.
func (e *Encrypted) Decrypt(ctx context.Context, src KeySource, expiration string) (*Password, error) {
	b := e.Blob
	sd, err := TargetSD(b.SID)
	if err != nil {
		return nil, err
	}
	k := b.KeyID
	env, err := src.GetKey(ctx, sd, k.RootKeyID, k.L0, k.L1, k.L2)
	if err != nil {
		if errors.Is(err, ErrDecryptionRefused) {
			return nil, &RefusedError{SID: b.SID, Err: err}
		}
		return nil, err
	}
	pt, err := b.Decrypt(env)
	clear(env.L1Key)
	clear(env.L2Key)
	if err != nil {
		if errors.Is(err, ErrDecryptionRefused) {
			return nil, &RefusedError{SID: b.SID, Err: err}
		}
		return nil, err
	}
	p, err := ParseDecrypted(pt, expiration)
	clear(pt)
	if err != nil {
		return nil, err
	}
	if p.Updated.IsZero() {
		p.Updated = e.Updated
	}
	return p, nil
}
