package krb

import (
	"context"
	"encoding/asn1"
	"errors"
	"sync"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	msrpcsmb2 "github.com/oiweiwei/go-msrpc/smb2"
	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/credential"
	"github.com/oiweiwei/go-msrpc/ssp/gssapi"
	"github.com/oiweiwei/go-msrpc/ssp/krb5"
	smb2 "github.com/oiweiwei/go-smb2.fork"
	"github.com/oiweiwei/gokrb5.fork/v9/credentials"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/nametype"
	"github.com/oiweiwei/gokrb5.fork/v9/spnego"
	"github.com/oiweiwei/gokrb5.fork/v9/types"
)

// ticketCCache returns an in-memory credentials cache holding e's TGT and
// the service ticket t, so that go-msrpc's Kerberos mechanism
// finds the ticket and makes no AS or TGS exchange of its own.
func ticketCCache(e *entry, t *ticket) (*credentials.CCache, error) {
	client := credentials.Principal{Realm: e.cred.Realm, PrincipalName: types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, e.cred.User)}
	mk := func(t *ticket, server types.PrincipalName, realm string) (*credentials.Credential, error) {
		b, err := t.tkt.Marshal()
		if err != nil {
			return nil, err
		}
		return &credentials.Credential{
			Client:      client,
			Server:      credentials.Principal{Realm: realm, PrincipalName: server},
			Key:         t.key,
			AuthTime:    t.auth,
			StartTime:   t.start,
			EndTime:     t.end,
			RenewTill:   t.renew,
			TicketFlags: t.flags,
			Ticket:      b,
		}, nil
	}
	tgt, err := mk(e.tgt, e.tgt.tkt.SName, e.tgt.tkt.Realm)
	if err != nil {
		return nil, err
	}
	svc, err := mk(t, t.tkt.SName, t.tkt.Realm)
	if err != nil {
		return nil, err
	}
	return &credentials.CCache{Version: 4, DefaultPrincipal: client, Credentials: []*credentials.Credential{tgt, svc}}, nil
}

// Initiator returns a security context initiator for one SMB session to
// the service spn (cifs/FQDN) as cred, for go-smb2's Dialer.Initiator
// (internal/smbconn passes it through): SPNEGO with Kerberos only, mutual
// authentication required, in DCE style (AP-REQ, AP-REP, AP-REP), which
// is the three-leg exchange go-smb2's session setup expects. The tickets
// come from the cache, so the initiator makes no AS or TGS exchange;
// getting them is what may fail here, with a diagnosis (*Error).
//
// Each call returns a new security context with its own credential; it
// never uses go-msrpc's global credential or mechanism stores. The
// initiator fails the session setup with ErrMutualAuth when the server
// sends no AP-REP: only the computer that holds the service's key can
// make one, so a host that answers for a name it does not own cannot
// complete the logon.
func (c *Cache) Initiator(ctx context.Context, cred Credential, spn string) (smb2.Initiator, error) {
	kconf, cc, err := c.contextConfig(ctx, cred, spn, gssapi.MutualAuthn, gssapi.Integrity, gssapi.Confidentiality)
	if err != nil {
		return nil, err
	}
	in := msrpcsmb2.SecurtiyContextInitiator(
		gssapi.WithMechanismFactory(ssp.SPNEGO),
		gssapi.WithMechanismFactory(ssp.KRB5, kconf),
		gssapi.WithCredential(cc),
		gssapi.WithTargetName(spn),
		gssapi.WithRequest(gssapi.MutualAuthn),
	)
	return &mutualInitiator{Initiator: in, spn: spn}, nil
}

// contextConfig returns what a security context for spn is built from:
// go-msrpc's Kerberos configuration with flags, and a credential holding
// the cached TGT and spn's service ticket, so that the mechanism makes no
// AS or TGS exchange of its own (any it would make is counted and bounded
// like ours). It fails like serviceTicket, or with ErrBadInput when the
// tickets cannot be put in a ccache.
func (c *Cache) contextConfig(ctx context.Context, cred Credential, spn string, flags ...gssapi.Cap) (*krb5.Config, credential.CCache, error) {
	e, t, err := c.serviceTicket(ctx, cred, spn)
	if err != nil {
		return nil, nil, err
	}
	e.mu.Lock()
	cc, err := ticketCCache(e, t)
	conf, r := e.conf, e.cred
	e.mu.Unlock()
	if err != nil {
		return nil, nil, &Error{Op: "security context", Principal: cred.principal(), SPN: spn, Kind: ErrBadInput, Err: err}
	}
	fl := make([]int, len(flags))
	for i, f := range flags {
		fl[i] = int(f)
	}
	var discard exchangeLog
	kconf := &krb5.Config{
		KRB5Config:      conf,
		DCEStyle:        true,
		DisablePAFXFAST: true,
		Flags:           fl,
		KDCDialer:       c.dialer(&discard, context.Background),
	}
	return kconf, credential.NewFromCCache(r.User, cc, credential.Domain(r.Realm)), nil
}

// mutualInitiator requires the server's answer to carry a token (the
// AP-REP): go-msrpc's Kerberos mechanism would otherwise accept an empty
// answer and derive the session key from the ticket alone.
type mutualInitiator struct {
	smb2.Initiator
	spn string

	mu  sync.Mutex
	err error
}

func (m *mutualInitiator) OID() asn1.ObjectIdentifier { return m.Initiator.OID() }

func (m *mutualInitiator) AcceptSecContext(b []byte) ([]byte, error) {
	var resp spnego.NegTokenResp
	if perr := resp.Unmarshal(b); perr != nil || len(resp.ResponseToken) == 0 {
		why := "the server sent no AP-REP"
		if perr != nil {
			why = "the server's SPNEGO answer does not parse: " + perr.Error()
		}
		err := &Error{Op: "SMB session setup", SPN: m.spn, Kind: ErrMutualAuth, Err: errors.New(why)}
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		return nil, err
	}
	out, err := m.Initiator.AcceptSecContext(b)
	if err != nil {
		err = &Error{Op: "SMB session setup", SPN: m.spn, Kind: ErrMutualAuth, Err: err}
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
	}
	return out, err
}

// Failure returns the error that AcceptSecContext failed with, if any;
// go-smb2 reports it only as text.
func (m *mutualInitiator) Failure() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// RPCOptions returns go-msrpc client options that authenticate one
// DCE/RPC bind as cred to spn (host/FQDN for svcctl and winreg over TCP,
// RPCSS/FQDN for DCOM activation) with Kerberos (auth type 16, DCE
// style, mutual authentication), sealed (PKT_PRIVACY) or, with seal
// false, signed (PKT_INTEGRITY). Pass them to the generated client
// constructor. The tickets come from the cache; the options hold their
// own credential and security context and never touch go-msrpc's global
// stores.
//
// Every check of a received PDU (sealed or signed) that fails, because
// the data was altered on the way, the verifier is missing or malformed,
// or the peer lacks the session key, fails the call with an error matching
// ErrIntegrity (adauth.ErrIntegrity), and every later call on the
// connection fails too. go-msrpc's own Kerberos mechanism does refuse a
// bad checksum (TestSealedIntegrity), but with a bare GSS-API error, and
// its AES unwrap panics on a verifier shorter than 16 bytes, so the
// options wrap it (verifyingKRB5). Proved end to end against winemu
// through a tampering proxy (remotereg and wmi TestKerberosTampering*).
// A replayed PDU is refused by the sequence number and, when its clear
// sequence number is rewritten, by the checksum over the signed header.
func (c *Cache) RPCOptions(ctx context.Context, cred Credential, spn string, seal bool) ([]dcerpc.Option, error) {
	kconf, cc, err := c.contextConfig(ctx, cred, spn, gssapi.MutualAuthn)
	if err != nil {
		return nil, err
	}
	level := dcerpc.WithSign()
	if seal {
		level = dcerpc.WithSeal()
	}
	return []dcerpc.Option{
		dcerpc.WithMechanism(verifyingKRB5{}, kconf),
		dcerpc.WithSecurityConfig(kconf),
		dcerpc.WithCredentials(cc),
		dcerpc.WithTargetName(spn),
		level,
	}, nil
}
