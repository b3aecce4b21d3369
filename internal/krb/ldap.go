package krb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"
	"github.com/oiweiwei/gokrb5.fork/v9/crypto"
	"github.com/oiweiwei/gokrb5.fork/v9/gssapi"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/flags"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/keyusage"
	"github.com/oiweiwei/gokrb5.fork/v9/messages"
	"github.com/oiweiwei/gokrb5.fork/v9/spnego"
	"github.com/oiweiwei/gokrb5.fork/v9/types"
)

// LDAPClient returns a go-ldap GSSAPI client for one SASL GSSAPI bind
// (ldap.Conn.GSSAPIBind) as cred to spn (ldap/FQDN of the DC), from the
// cache's tickets. It requests mutual authentication and checks the
// DC's AP-REP, and negotiates no SASL security layer (RFC 4752): use it
// only on a TLS connection (LDAPS or StartTLS), which protects the rest
// of the session. go-ldap's target argument must equal spn.
//
// Getting the ticket is what may fail here (with a diagnosis, *Error);
// the bind itself fails with ErrMutualAuth when the DC's answer does not
// prove that it holds the service key.
func (c *Cache) LDAPClient(ctx context.Context, cred Credential, spn string) (ldap.GSSAPIClient, error) {
	e, t, err := c.serviceTicket(ctx, cred, spn)
	if err != nil {
		return nil, err
	}
	return &ldapGSS{e: e, t: t, spn: spn}, nil
}

// ldapGSS is the RFC 4752 client side on a cached ticket.
type ldapGSS struct {
	e   *entry
	t   *ticket
	spn string

	mu      sync.Mutex
	apReq   *messages.APReq
	subkey  types.EncryptionKey // the acceptor's subkey, once the AP-REP is verified
	mutual  bool
	deleted bool
}

func (g *ldapGSS) InitSecContext(target string, token []byte) ([]byte, bool, error) {
	return g.InitSecContextWithOptions(target, token, nil)
}

// InitSecContextWithOptions sends the AP-REQ (first call), then verifies
// the DC's AP-REP (second call). apOptions are added to mutual-required.
func (g *ldapGSS) InitSecContextWithOptions(target string, token []byte, apOptions []int) ([]byte, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !strings.EqualFold(target, g.spn) {
		return nil, false, fmt.Errorf("%w: GSSAPI target %q, but the ticket is for %q", ErrBadInput, target, g.spn)
	}
	if g.apReq == nil {
		g.e.mu.Lock()
		cl := g.e.cl
		g.e.mu.Unlock()
		opts := append([]int{flags.APOptionMutualRequired}, apOptions...)
		tok, err := spnego.NewKRB5TokenAPREQ(cl, g.t.tkt, g.t.key, []int{gssapi.ContextFlagMutual, gssapi.ContextFlagInteg}, opts)
		if err != nil {
			return nil, false, &Error{Op: "LDAP GSSAPI bind", SPN: g.spn, Kind: ErrBadInput, Err: err}
		}
		b, err := tok.Marshal()
		if err != nil {
			return nil, false, &Error{Op: "LDAP GSSAPI bind", SPN: g.spn, Kind: ErrBadInput, Err: err}
		}
		// Keep the authenticator in clear, to match the AP-REP against it
		// and to take the first sequence number from it.
		if err := tok.APReq.DecryptAuthenticator(g.t.key); err != nil {
			return nil, false, &Error{Op: "LDAP GSSAPI bind", SPN: g.spn, Kind: ErrBadInput, Err: err}
		}
		g.apReq = &tok.APReq
		return b, true, nil
	}
	fail := func(why string, err error) ([]byte, bool, error) {
		if err != nil {
			why += ": " + err.Error()
		}
		return nil, false, &Error{Op: "LDAP GSSAPI bind", SPN: g.spn, Kind: ErrMutualAuth, Err: errors.New(why)}
	}
	var resp spnego.KRB5Token
	if err := resp.Unmarshal(token); err != nil {
		return fail("the DC's answer is not a Kerberos token", err)
	}
	if resp.IsKRBError() {
		return fail("the DC refused the ticket", resp.KRBError)
	}
	if !resp.IsAPRep() {
		return fail("the DC sent no AP-REP", nil)
	}
	rep := resp.APRep
	if err := rep.DecryptEncPart(g.t.key); err != nil {
		return fail("the AP-REP does not decrypt with the ticket's session key", err)
	}
	p := rep.DecryptedEncPart
	if !p.CTime.Equal(g.apReq.Authenticator.CTime) || p.Cusec != g.apReq.Authenticator.Cusec {
		return fail("the AP-REP does not answer our authenticator", nil)
	}
	g.subkey, g.mutual = p.Subkey, true
	return nil, false, nil
}

// NegotiateSaslAuth reads the DC's offer of security layers (a wrap token
// from the acceptor, checked) and answers "no security layer" with
// authzid, in a wrap token of the initiator.
func (g *ldapGSS) NegotiateSaslAuth(token []byte, authzid string) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mutual {
		return nil, &Error{Op: "LDAP GSSAPI bind", SPN: g.spn, Kind: ErrMutualAuth, Err: errors.New("security layer negotiation before mutual authentication")}
	}
	key := g.t.key
	if len(g.subkey.KeyValue) > 0 {
		key = g.subkey
	}
	in, err := unrotate(token)
	if err != nil {
		return nil, &Error{Op: "LDAP GSSAPI bind", SPN: g.spn, Kind: ErrMutualAuth, Err: err}
	}
	var wt gssapi.WrapToken
	if err := wt.Unmarshal(in, true); err != nil {
		return nil, &Error{Op: "LDAP GSSAPI bind", SPN: g.spn, Kind: ErrMutualAuth, Err: err}
	}
	if wt.Flags&0x02 != 0 {
		return nil, &Error{Op: "LDAP GSSAPI bind", SPN: g.spn, Kind: ErrMutualAuth, Err: errors.New("the DC sealed its security-layer offer; only integrity-protected tokens are supported")}
	}
	if ok, err := wt.Verify(key, keyusage.GSSAPI_ACCEPTOR_SEAL); !ok || err != nil {
		return nil, &Error{Op: "LDAP GSSAPI bind", SPN: g.spn, Kind: ErrMutualAuth, Err: fmt.Errorf("the DC's security-layer offer fails its checksum: %v", err)}
	}
	if len(wt.Payload) != 4 || wt.Payload[0]&0x01 == 0 {
		return nil, fmt.Errorf("krb: LDAP GSSAPI bind: the DC does not offer running without a security layer (offer %x); use LDAPS or StartTLS with a DC that allows it", wt.Payload)
	}
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, err
	}
	payload := append([]byte{0x01, 0, 0, 0}, authzid...) // no security layer, no buffer
	// The initiator's first sequence number is its authenticator's.
	out := gssapi.WrapToken{EC: uint16(et.GetHMACBitLength() / 8), SndSeqNum: uint64(g.apReq.Authenticator.SeqNumber), Payload: payload}
	if len(g.subkey.KeyValue) > 0 {
		out.Flags |= 0x04 // AcceptorSubkey: the key is the acceptor's subkey
	}
	if err := out.SetCheckSum(key, keyusage.GSSAPI_INITIATOR_SEAL); err != nil {
		return nil, err
	}
	return out.Marshal()
}

// DeleteSecContext forgets the context's keys.
func (g *ldapGSS) DeleteSecContext() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleted = true
	g.subkey = types.EncryptionKey{}
	return nil
}

// unrotate undoes a wrap token's right rotation (RRC, RFC 4121 4.2.5), so
// that the checksum is at the end where the library expects it.
func unrotate(b []byte) ([]byte, error) {
	if len(b) < 16 {
		return nil, errors.New("wrap token shorter than its header")
	}
	rrc := int(binary.BigEndian.Uint16(b[6:8]))
	data := b[16:]
	if rrc == 0 || len(data) == 0 {
		return b, nil
	}
	rrc %= len(data)
	out := make([]byte, 0, len(b))
	out = append(out, b[:16]...)
	out[6], out[7] = 0, 0
	out = append(out, data[rrc:]...)
	out = append(out, data[:rrc]...)
	return out, nil
}
