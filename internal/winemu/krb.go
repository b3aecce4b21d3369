package winemu

// krb.go is the server side of Kerberos over DCE/RPC (auth type 16, DCE
// style): go-msrpc's krb5 acceptor with the computer's keytab, in a
// security context of its own (never the process-global stores). The
// acceptor does not report who authenticated, so the factory keeps the
// mechanism it made, and the client's principal is read from the ticket
// it decrypted.

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/oiweiwei/go-msrpc/ssp"
	"github.com/oiweiwei/go-msrpc/ssp/credential"
	"github.com/oiweiwei/go-msrpc/ssp/gssapi"
	"github.com/oiweiwei/go-msrpc/ssp/krb5"
)

// krbFactory makes go-msrpc's krb5 mechanism and remembers it.
type krbFactory struct {
	mu sync.Mutex
	m  *krb5.Mechanism
}

func (f *krbFactory) New(ctx context.Context) (gssapi.Mechanism, error) {
	m, err := ssp.KRB5.New(ctx)
	if err != nil {
		return nil, err
	}
	if km, ok := m.(*krb5.Mechanism); ok {
		f.mu.Lock()
		f.m = km
		f.mu.Unlock()
	}
	return m, nil
}

func (f *krbFactory) DefaultConfig(ctx context.Context) (gssapi.MechanismConfig, error) {
	return ssp.KRB5.DefaultConfig(ctx)
}

func (f *krbFactory) Type() gssapi.OID { return ssp.KRB5.Type() }

// client returns the authenticated client's user name (without realm),
// or "" before the AP-REQ was verified.
func (f *krbFactory) client() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || f.m.Authentifier == nil || f.m.APReq == nil {
		return ""
	}
	return strings.Join(f.m.APReq.Ticket.DecryptedEncPart.CName.NameString, "/")
}

// newKerberosContext returns the security context of one Kerberos bind,
// accepting tickets for any service principal of s.Keytab (host/,
// RPCSS/, cifs/ of the computer: they share the machine account's key).
func (s *Server) newKerberosContext(st secTrailer) (*authContext, error) {
	if s.Keytab == nil {
		return nil, fmt.Errorf("%w: Kerberos (auth type 16) is not served: no keytab", ErrAuth)
	}
	f := &krbFactory{}
	conf := &krb5.Config{
		DCEStyle:        true,
		KeytabPrincipal: s.KeytabPrincipal,
		Flags:           []int{int(gssapi.MutualAuthn), int(gssapi.Integrity), int(gssapi.Confidentiality)},
	}
	caps := gssapi.Integrity | gssapi.ReplayDetection | gssapi.Sequencing | gssapi.MutualAuthn
	if st.AuthLevel >= 6 {
		caps |= gssapi.Confidentiality
	}
	return &authContext{
		id:    st.ContextID,
		typ:   st.AuthType,
		level: st.AuthLevel,
		gss: gssapi.NewSecurityContext(context.Background(), gssapi.WithMechanismFactory(f, conf),
			gssapi.WithCredential(credential.NewFromKeytab(s.KeytabPrincipal, s.Keytab))),
		krb: f,
		opts: []gssapi.Option{
			gssapi.WithMechanismType(ssp.MechanismTypeKRB5),
			gssapi.WithRequest(caps),
		},
	}, nil
}

// sigSize is the length of the signature (auth_value) of a response
// fragment on a: 16 for NTLM, the Kerberos wrap or MIC token otherwise.
func (a *authContext) sigSize() int {
	if a.nt != nil || a.krb == nil {
		return ntlmSigSize
	}
	const probe = 4096
	return probe - gssapi.WrapSizeLimit(a.gss, probe, gssapi.WithRequest(a.confCaps()))
}

func (a *authContext) confCaps() gssapi.Cap {
	if a.level >= 6 {
		return gssapi.Confidentiality
	}
	return 0
}
