package winemu

// auth.go is the server side of NTLM over DCE/RPC: one go-msrpc NTLM
// acceptor per security context, with the server's own credential
// database (never the process-global gssapi store), and the per-fragment
// verification and protection of signed and sealed PDUs.

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/credential"
	"github.com/oiweiwei/go-msrpc/ssp/gssapi"
	"github.com/oiweiwei/go-msrpc/ssp/name"
)

// ErrAuth reports a failed authentication or a PDU whose signature does
// not verify. It never carries credential material.
var ErrAuth = errors.New("winemu: authentication failed")

// User is one account that may authenticate to the emulator.
//
// Exactly one of Password and NTHash is used: NTHash (32 hex digits) wins
// when both are set. Admin marks a member of BUILTIN\Administrators; other
// users get the rights of an ordinary authenticated user.
type User struct {
	Password string
	NTHash   string
	Admin    bool
}

// userDB is a per-context credential database for go-msrpc's NTLM
// verifier. It remembers which account the client's AUTHENTICATE message
// named, so that the server knows who authenticated.
type userDB struct {
	users map[string]User

	mu      sync.Mutex
	matched string
}

func newUserDB(users map[string]User) *userDB {
	m := make(map[string]User, len(users))
	for n, u := range users {
		m[strings.ToLower(n)] = u
	}
	return &userDB{users: m}
}

// Add is required by credential.Database; the table is fixed at creation.
func (db *userDB) Add(credential.Credential) {}

// Lookup returns the stored secret for the named user, ignoring the domain
// (the emulator is a standalone workgroup machine).
func (db *userDB) Lookup(_ context.Context, c credential.Credential) (credential.Credential, bool) {
	if c == nil {
		return nil, false
	}
	key := strings.ToLower(c.UserName())
	u, ok := db.users[key]
	if !ok {
		return nil, false
	}
	db.mu.Lock()
	db.matched = key
	db.mu.Unlock()
	opts := []credential.Option{credential.Domain(c.DomainName())}
	if u.NTHash != "" {
		h, err := hex.DecodeString(u.NTHash)
		if err != nil || len(h) != 16 {
			return nil, false
		}
		return credential.NewFromNTHashBytes(c.UserName(), h, opts...), true
	}
	return credential.NewFromPassword(c.UserName(), u.Password, opts...), true
}

func (db *userDB) matchedUser() string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.matched
}

// authContext is one DCE/RPC security context on a connection.
type authContext struct {
	id    uint32
	typ   dcerpc.AuthType
	level dcerpc.AuthLevel
	gss   context.Context
	db    *userDB
	opts  []gssapi.Option
	// nt is winemu's own NTLM acceptor, used for auth type 10 in place
	// of go-msrpc's (gss, db and opts then stay unused).
	nt *ntlmAcceptor
	// krb is the Kerberos mechanism's factory, for auth type 16.
	krb *krbFactory

	complete bool
	failed   bool
	user     string
	admin    bool
}

func (s *Server) newAuthContext(st secTrailer) (*authContext, error) {
	mech := ssp.MechanismTypeNTLM
	factories := []gssapi.ContextOption{gssapi.WithMechanismFactory(ssp.NTLM)}
	if st.AuthType == dcerpc.AuthTypeKerberos {
		if st.AuthLevel < dcerpc.AuthLevelConnect || st.AuthLevel > dcerpc.AuthLevelPktPrivacy {
			return nil, fmt.Errorf("%w: auth level %d", ErrAuth, st.AuthLevel)
		}
		return s.newKerberosContext(st)
	}
	if s.NoNTLM {
		return nil, fmt.Errorf("%w: NTLM is disabled (auth type %d)", ErrAuth, st.AuthType)
	}
	switch st.AuthType {
	case dcerpc.AuthTypeWinNT:
	case dcerpc.AuthTypeGSSNegotiate:
		mech = ssp.MechanismTypeSPNEGO
		factories = append(factories, gssapi.WithMechanismFactory(ssp.SPNEGO))
	default:
		return nil, fmt.Errorf("%w: auth type %d is not served (NTLM and SPNEGO with NTLM only)", ErrAuth, st.AuthType)
	}
	if st.AuthLevel < dcerpc.AuthLevelConnect || st.AuthLevel > dcerpc.AuthLevelPktPrivacy {
		return nil, fmt.Errorf("%w: auth level %d", ErrAuth, st.AuthLevel)
	}
	nb, dns := s.names()
	if st.AuthType == dcerpc.AuthTypeWinNT {
		return &authContext{id: st.ContextID, typ: st.AuthType, level: st.AuthLevel, nt: &ntlmAcceptor{
			users: s.Users, nb: nb.Name, nbDom: nb.Domain, dns: dns.Name, dnsD: dns.Domain,
		}}, nil
	}
	db := newUserDB(s.Users)
	caps := gssapi.Integrity | gssapi.ReplayDetection | gssapi.Sequencing
	if st.AuthLevel == dcerpc.AuthLevelPktPrivacy {
		caps |= gssapi.Confidentiality
	}
	a := &authContext{
		id:    st.ContextID,
		typ:   st.AuthType,
		level: st.AuthLevel,
		gss:   gssapi.NewSecurityContext(context.Background(), factories...),
		db:    db,
		opts: []gssapi.Option{
			gssapi.WithMechanismType(mech),
			gssapi.WithCredentialDatabase(gssapi.NewCredentialDatabase(credential.Database(db))),
			gssapi.WithServerNames(nb, dns),
			gssapi.WithRequest(caps),
		},
	}
	return a, nil
}

// names returns the NetBIOS and DNS names the NTLM CHALLENGE announces.
func (s *Server) names() (*name.Name, *name.Name) {
	host := s.NetBIOSName
	if host == "" {
		host = "WINEMU"
	}
	domain := s.Workgroup
	if domain == "" {
		domain = "WORKGROUP"
	}
	dnsHost := s.DNSName
	if dnsHost == "" {
		dnsHost = strings.ToLower(host)
	}
	return &name.Name{Type: name.NetBIOSNameType, Name: strings.ToUpper(host), Domain: strings.ToUpper(domain)},
		&name.Name{Type: name.DNSNameType, Name: dnsHost, Domain: s.DNSDomain}
}

// step runs one leg of the context establishment: NEGOTIATE in and
// CHALLENGE out on bind, AUTHENTICATE in on auth3 (NTLM) or
// alter_context (SPNEGO, whose last token goes back to the client). On
// failure the context is marked failed and every later request on it is
// faulted.
func (a *authContext) step(token []byte, users map[string]User) ([]byte, error) {
	if a.complete || a.failed {
		a.failed = true
		return nil, fmt.Errorf("%w: unexpected leg", ErrAuth)
	}
	if a.nt != nil {
		return a.stepNTLM(token, users)
	}
	out, err := gssapi.AcceptSecurityContext(a.gss, &gssapi.Token{Payload: token}, a.opts...)
	if err != nil {
		a.failed = true
		return nil, fmt.Errorf("%w: %v", ErrAuth, err)
	}
	if !gssapi.IsComplete(a.gss) {
		return out.Payload, nil
	}
	var key string
	if a.krb != nil {
		key = a.krb.client()
	} else {
		key = a.db.matchedUser()
	}
	for n, u := range users {
		if strings.EqualFold(n, key) {
			a.user, a.admin = n, u.Admin
		}
	}
	if a.user == "" {
		a.failed = true
		return nil, fmt.Errorf("%w: no account matched", ErrAuth)
	}
	a.complete = true
	return out.Payload, nil
}

// stepNTLM is step for winemu's own NTLM acceptor: NEGOTIATE in and
// CHALLENGE out, then AUTHENTICATE in and nothing out.
func (a *authContext) stepNTLM(token []byte, users map[string]User) ([]byte, error) {
	if a.nt.challenge == nil {
		out, err := a.nt.accept(token)
		if err != nil {
			a.failed = true
			return nil, fmt.Errorf("%w: %v", ErrAuth, err)
		}
		return out, nil
	}
	key, err := a.nt.finish(token)
	if err != nil {
		a.failed = true
		return nil, fmt.Errorf("%w: %v", ErrAuth, err)
	}
	a.user, a.admin = key, users[key].Admin
	a.complete = true
	return nil, nil
}

func (a *authContext) payloads(hdr, stub, trailer []byte) *gssapi.MessageTokenEx {
	stubCaps := gssapi.Integrity
	if a.level == dcerpc.AuthLevelPktPrivacy {
		stubCaps |= gssapi.Confidentiality
	}
	return &gssapi.MessageTokenEx{Payloads: []*gssapi.PayloadEx{
		{Payload: hdr, Capabilities: gssapi.Integrity},
		{Payload: stub, Capabilities: stubCaps},
		{Payload: trailer, Capabilities: gssapi.Integrity},
	}}
}

// verify checks (and at privacy decrypts in place) one received request
// fragment. hdr is the PDU header up to the stub, stub runs to the
// security trailer (including the auth padding).
func (a *authContext) verify(hdr, stub, trailer, sig []byte) error {
	if a.nt != nil {
		var sealed []byte
		if a.level == dcerpc.AuthLevelPktPrivacy {
			sealed = stub
		}
		if err := a.nt.verifyIn([][]byte{hdr, stub, trailer}, sealed, sig); err != nil {
			return fmt.Errorf("%w: request %v", ErrAuth, err)
		}
		return nil
	}
	tok := a.payloads(hdr, stub, trailer)
	if a.krb != nil {
		// Kerberos unwraps and verifies against the signature given; a
		// bad one fails (go-msrpc's NTLM, below, recomputes it instead).
		if len(sig) != a.sigSize() {
			return fmt.Errorf("%w: request signature of %d bytes", ErrAuth, len(sig))
		}
		tok.Signature = sig
		var err error
		if a.level == dcerpc.AuthLevelPktPrivacy {
			_, err = gssapi.UnwrapEx(a.gss, tok)
		} else {
			err = gssapi.VerifySignatureEx(a.gss, tok)
		}
		if err != nil {
			return fmt.Errorf("%w: request failed Kerberos verification: %v", ErrAuth, err)
		}
		return nil
	}
	switch a.level {
	case dcerpc.AuthLevelPktPrivacy:
		out, err := gssapi.UnwrapEx(a.gss, tok)
		if err != nil {
			return fmt.Errorf("%w: unwrap: %v", ErrAuth, err)
		}
		if !bytes.Equal(out.Signature, sig) {
			return fmt.Errorf("%w: sealed request signature mismatch", ErrAuth)
		}
	case dcerpc.AuthLevelPktIntegrity, dcerpc.AuthLevelPkt, dcerpc.AuthLevelCall:
		tok.Signature = sig
		if err := gssapi.VerifySignatureEx(a.gss, tok); err != nil {
			return fmt.Errorf("%w: request signature mismatch", ErrAuth)
		}
	}
	return nil
}

// protect signs (and at privacy encrypts in place) one response fragment
// and returns its signature.
func (a *authContext) protect(hdr, stub, trailer []byte) ([]byte, error) {
	if a.nt != nil {
		var sealed []byte
		if a.level == dcerpc.AuthLevelPktPrivacy {
			sealed = stub
		}
		return a.nt.protectOut([][]byte{hdr, stub, trailer}, sealed), nil
	}
	tok := a.payloads(hdr, stub, trailer)
	var (
		out *gssapi.MessageTokenEx
		err error
	)
	if a.level == dcerpc.AuthLevelPktPrivacy {
		out, err = gssapi.WrapEx(a.gss, tok)
	} else {
		out, err = gssapi.MakeSignatureEx(a.gss, tok)
	}
	if err != nil {
		return nil, fmt.Errorf("winemu: protect response: %w", err)
	}
	return out.Signature, nil
}

// perMessage reports whether the context signs every request/response.
func (a *authContext) perMessage() bool {
	return a != nil && a.level >= dcerpc.AuthLevelPkt
}
