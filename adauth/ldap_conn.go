package adauth

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/go-ntlmssp"
	ber "github.com/go-asn1-ber/asn1-ber"
)

// This file holds the part of the LDAP conversation that happens before
// go-ldap takes the connection over: StartTLS, the anonymous rootDSE read
// and the bind. go-ldap v3.4.15 has no generic SASL bind (its NTLMBind is
// the Sicily protocol, which Samba drops, and its GSSAPI bind hard-codes the
// mechanism), so these few requests are framed here, one at a time, on the
// bare connection. Nothing is read ahead, so the connection can be handed
// to ldap.NewConn afterwards.

// LDAP protocol op tags (RFC 4511 section 4.2 onwards).
const (
	appBindRequest      = 0
	appBindResponse     = 1
	appSearchRequest    = 3
	appSearchEntry      = 4
	appSearchDone       = 5
	appSearchReference  = 19
	appExtendedRequest  = 23
	appExtendedResponse = 24

	oidStartTLS        = "1.3.6.1.4.1.1466.20037"
	oidNoticeOfDiscon  = "1.3.6.1.4.1.1466.20036"
	oidPagedResults    = "1.2.840.113556.1.4.319"
	saslMechGSSSPNEGO  = "GSS-SPNEGO"
	ldapResultSuccess  = 0
	ldapResultSASLBind = 14
)

// rootDSE is what the discoverer reads from the server's root entry.
type rootDSE struct {
	DefaultNamingContext       string
	ConfigurationNamingContext string
	DNSHostName                string
	ServerName                 string
	SASLMechanisms             []string
	Controls                   []string
}

func (r *rootDSE) supportsControl(oid string) bool {
	for _, c := range r.Controls {
		if c == oid {
			return true
		}
	}
	return false
}

func (r *rootDSE) supportsSASL(mech string) bool {
	for _, m := range r.SASLMechanisms {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// preConn is a connection during the pre-bind phase.
type preConn struct {
	c       net.Conn
	server  string // host:port, for errors
	host    string // the DC's name (or address) from the URL or SRV record
	isTLS   bool
	nextID  int64
	timeout time.Duration
}

// ldapResult is a decoded LDAPResult plus the extra fields of bind and
// extended responses.
type ldapResult struct {
	Code       int
	MatchedDN  string
	Diagnostic string
	SASLCreds  []byte // BindResponse serverSaslCreds [7]
	hasCreds   bool
	Name       string // ExtendedResponse responseName [10]
}

// guard applies ctx and the per-operation timeout to the connection for
// the duration of one exchange; the returned function lifts them.
func (p *preConn) guard(ctx context.Context) func() {
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = p.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = p.c.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		_ = p.c.SetDeadline(time.Time{})
	}
}

// netErr turns an I/O error during an exchange into ctx.Err() when ctx is
// what ended it.
func netErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// send writes one LDAP message carrying op and returns its message ID.
func (p *preConn) send(op *ber.Packet) (int64, error) {
	p.nextID++
	id := p.nextID
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "messageID"))
	msg.AppendChild(op)
	_, err := p.c.Write(msg.Bytes())
	return id, err
}

// recv reads one LDAP message for id and returns its protocol op. A Notice
// of Disconnection (message ID 0) is returned as an error result.
func (p *preConn) recv(id int64) (*ber.Packet, error) {
	for {
		msg, err := ber.ReadPacket(p.c)
		if err != nil {
			return nil, err
		}
		if len(msg.Children) < 2 {
			return nil, fmt.Errorf("%w: short LDAPMessage", ErrProtocol)
		}
		gotID, ok := msg.Children[0].Value.(int64)
		if !ok {
			return nil, fmt.Errorf("%w: bad messageID", ErrProtocol)
		}
		op := msg.Children[1]
		if gotID == 0 {
			r, err := parseResult(op)
			if err == nil && r.Name == oidNoticeOfDiscon {
				return nil, resultError("", p.server, r.Code, r.Diagnostic)
			}
			continue // an unsolicited notification we do not know: ignore
		}
		if gotID != id {
			return nil, fmt.Errorf("%w: response for message %d while waiting for %d", ErrProtocol, gotID, id)
		}
		return op, nil
	}
}

// parseResult decodes an LDAPResult-shaped protocol op.
func parseResult(op *ber.Packet) (ldapResult, error) {
	var r ldapResult
	if op.ClassType != ber.ClassApplication || len(op.Children) < 3 {
		return r, fmt.Errorf("%w: not an LDAPResult", ErrProtocol)
	}
	code, ok := op.Children[0].Value.(int64)
	if !ok {
		return r, fmt.Errorf("%w: bad resultCode", ErrProtocol)
	}
	r.Code = int(code)
	r.MatchedDN = op.Children[1].Data.String()
	r.Diagnostic = op.Children[2].Data.String()
	for _, c := range op.Children[3:] {
		if c.ClassType != ber.ClassContext {
			continue
		}
		switch c.Tag {
		case 7:
			r.SASLCreds = append([]byte(nil), c.Data.Bytes()...)
			r.hasCreds = true
		case 10:
			r.Name = c.Data.String()
		}
	}
	return r, nil
}

// exchange sends op and reads the single response of type want.
func (p *preConn) exchange(ctx context.Context, op *ber.Packet, want ber.Tag) (ldapResult, error) {
	defer p.guard(ctx)()
	id, err := p.send(op)
	if err != nil {
		return ldapResult{}, netErr(ctx, err)
	}
	resp, err := p.recv(id)
	if err != nil {
		return ldapResult{}, netErr(ctx, err)
	}
	if resp.ClassType != ber.ClassApplication || resp.Tag != want {
		return ldapResult{}, fmt.Errorf("%w: unexpected response op %d", ErrProtocol, resp.Tag)
	}
	return parseResult(resp)
}

// startTLS asks the server to upgrade. It returns the LDAP result code.
func (p *preConn) startTLS(ctx context.Context) (ldapResult, error) {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appExtendedRequest, nil, "ExtendedRequest")
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, oidStartTLS, "requestName"))
	return p.exchange(ctx, op, appExtendedResponse)
}

// readRootDSE reads the root entry anonymously.
func (p *preConn) readRootDSE(ctx context.Context) (*rootDSE, error) {
	defer p.guard(ctx)()
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchRequest, nil, "SearchRequest")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "baseObject"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "scope: base"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "derefAliases: never"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "sizeLimit"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "timeLimit"))
	op.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "typesOnly"))
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 7, "objectClass", "filter: present"))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	for _, a := range []string{"defaultNamingContext", "configurationNamingContext", "dnsHostName", "serverName", "supportedSASLMechanisms", "supportedControl"} {
		attrs.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, "attribute"))
	}
	op.AppendChild(attrs)

	id, err := p.send(op)
	if err != nil {
		return nil, netErr(ctx, err)
	}
	dse := &rootDSE{}
	for {
		resp, err := p.recv(id)
		if err != nil {
			return nil, netErr(ctx, err)
		}
		if resp.ClassType != ber.ClassApplication {
			return nil, fmt.Errorf("%w: unexpected response class", ErrProtocol)
		}
		switch resp.Tag {
		case appSearchEntry:
			if len(resp.Children) < 2 {
				return nil, fmt.Errorf("%w: short SearchResultEntry", ErrProtocol)
			}
			for _, attr := range resp.Children[1].Children {
				if len(attr.Children) < 2 {
					continue
				}
				var vals []string
				for _, v := range attr.Children[1].Children {
					vals = append(vals, v.Data.String())
				}
				first := ""
				if len(vals) > 0 {
					first = vals[0]
				}
				switch strings.ToLower(attr.Children[0].Data.String()) {
				case "defaultnamingcontext":
					dse.DefaultNamingContext = first
				case "configurationnamingcontext":
					dse.ConfigurationNamingContext = first
				case "dnshostname":
					dse.DNSHostName = first
				case "servername":
					dse.ServerName = first
				case "supportedsaslmechanisms":
					dse.SASLMechanisms = vals
				case "supportedcontrol":
					dse.Controls = vals
				}
			}
		case appSearchReference:
			// not expected for the rootDSE; skip
		case appSearchDone:
			r, err := parseResult(resp)
			if err != nil {
				return nil, err
			}
			if r.Code != ldapResultSuccess {
				return nil, resultError(OpRootDSE, p.server, r.Code, r.Diagnostic)
			}
			return dse, nil
		default:
			return nil, fmt.Errorf("%w: unexpected response op %d", ErrProtocol, resp.Tag)
		}
	}
}

// bindRequest builds a BindRequest with simple or SASL authentication.
func bindRequest(name string, simple *string, mech string, creds []byte) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appBindRequest, nil, "BindRequest")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "version"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, "name"))
	if simple != nil {
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, *simple, "simple"))
		return op
	}
	sasl := ber.Encode(ber.ClassContext, ber.TypeConstructed, 3, nil, "sasl")
	sasl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, mech, "mechanism"))
	if creds != nil {
		sasl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(creds), "credentials"))
	}
	op.AppendChild(sasl)
	return op
}

// simpleBindName returns the name a simple bind sends for c: the DN when
// c.User is one (and no domain is set), user@domain for a DNS domain,
// DOMAIN\user for a NetBIOS domain, and the bare user otherwise.
func simpleBindName(c Credentials) string {
	switch {
	case c.Domain == "" && strings.Contains(c.User, "="):
		return c.User
	case strings.Contains(c.Domain, "."):
		return c.User + "@" + c.Domain
	case c.Domain != "":
		return c.Domain + `\` + c.User
	}
	return c.User
}

// ntlmAccount returns the account name go-ntlmssp splits into user and
// domain: DOMAIN\user, or user@domain (a UPN) for a DNS domain.
func ntlmAccount(c Credentials) string {
	if strings.Contains(c.Domain, ".") {
		return c.User + "@" + c.Domain
	}
	return c.Account()
}

// simpleBind binds with a name and password.
func (p *preConn) simpleBind(ctx context.Context, c Credentials) error {
	pw, _ := c.Password()
	r, err := p.exchange(ctx, bindRequest(simpleBindName(c), &pw, "", nil), appBindResponse)
	if err != nil {
		return bindErr(p.server, err)
	}
	if r.Code != ldapResultSuccess {
		return resultError(OpBind, p.server, r.Code, r.Diagnostic)
	}
	return nil
}

// ntlmBind binds with NTLM inside SASL GSS-SPNEGO: NEGOTIATE in a
// NegTokenInit, the server's CHALLENGE in a NegTokenResp, then AUTHENTICATE
// in a NegTokenResp. It asks for no signing or sealing: over TLS, Active
// Directory and Samba (with "allow_sasl_over_tls") accept that.
func (p *preConn) ntlmBind(ctx context.Context, c Credentials) error {
	negotiate, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		return opError(OpBind, p.server, "building the NTLM negotiate message", ErrProtocol, err)
	}
	tok, err := spnegoInitNTLM(negotiate)
	if err != nil {
		return opError(OpBind, p.server, "encoding SPNEGO", ErrProtocol, err)
	}
	r, err := p.exchange(ctx, bindRequest("", nil, saslMechGSSSPNEGO, tok), appBindResponse)
	if err != nil {
		return bindErr(p.server, err)
	}
	if r.Code != ldapResultSASLBind {
		return resultError(OpBind, p.server, r.Code, r.Diagnostic)
	}
	resp, err := parseNegTokenResp(r.SASLCreds)
	if err != nil {
		return opError(OpBind, p.server, "server's SPNEGO reply", ErrProtocol, err)
	}
	if resp.NegState == negReject {
		return opError(OpBind, p.server, "server rejected NTLM in SPNEGO", ErrBindMethod, nil)
	}
	if len(resp.SupportedMech) > 0 && !resp.SupportedMech.Equal(oidNTLMSSP) {
		return opError(OpBind, p.server, "server chose SPNEGO mechanism "+resp.SupportedMech.String()+", not NTLM", ErrBindMethod, nil)
	}
	if len(resp.ResponseToken) == 0 {
		return opError(OpBind, p.server, "server sent no NTLM challenge", ErrProtocol, nil)
	}
	var secret string
	opts := &ntlmssp.AuthenticateMessageOptions{}
	if h := c.NTHash(); h != nil {
		secret = hex.EncodeToString(h)
		opts.PasswordHashed = true
	} else {
		secret, _ = c.Password()
	}
	auth, err := ntlmssp.NewAuthenticateMessage(resp.ResponseToken, ntlmAccount(c), secret, opts)
	if err != nil {
		// go-ntlmssp's errors describe the challenge, never the secret.
		return opError(OpBind, p.server, "answering the NTLM challenge", ErrProtocol, err)
	}
	tok, err = spnegoRespToken(auth)
	if err != nil {
		return opError(OpBind, p.server, "encoding SPNEGO", ErrProtocol, err)
	}
	r, err = p.exchange(ctx, bindRequest("", nil, saslMechGSSSPNEGO, tok), appBindResponse)
	if err != nil {
		return bindErr(p.server, err)
	}
	if r.Code != ldapResultSuccess {
		return resultError(OpBind, p.server, r.Code, r.Diagnostic)
	}
	if r.hasCreds && len(r.SASLCreds) > 0 {
		final, err := parseNegTokenResp(r.SASLCreds)
		if err == nil && final.NegState == negReject {
			return opError(OpBind, p.server, "server rejected the NTLM authentication", ErrInvalidCredentials, nil)
		}
	}
	return nil
}

// bindErr wraps a transport or protocol failure during a bind.
func bindErr(server string, err error) error {
	var le *LDAPError
	if errors.As(err, &le) {
		if le.Op == "" {
			le.Op = OpBind
		}
		return le
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, ErrProtocol) {
		return opError(OpBind, server, "bad response", nil, err)
	}
	return opError(OpBind, server, "connection failed during bind (the server may have dropped it)", nil, err)
}

// target is one place to try to connect to.
type target struct {
	host   string // name or address literal, as given
	port   int
	ldaps  bool
	source string // "url" or "srv", for logs
}

func (t target) String() string { return net.JoinHostPort(t.host, strconv.Itoa(t.port)) }

// parseLDAPURL reads ldaps://host[:port] or ldap://host[:port].
func parseLDAPURL(s string) (target, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return target{}, fmt.Errorf("%w: URL %q has no scheme (want ldaps:// or ldap://)", ErrBadConfig, s)
	}
	t := target{source: "url"}
	switch strings.ToLower(scheme) {
	case "ldaps":
		t.ldaps, t.port = true, 636
	case "ldap":
		t.port = 389
	default:
		return target{}, fmt.Errorf("%w: URL scheme %q is not ldaps or ldap", ErrBadConfig, scheme)
	}
	hostport, _, _ := strings.Cut(rest, "/")
	if hostport == "" {
		return target{}, fmt.Errorf("%w: URL %q has no host", ErrBadConfig, s)
	}
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return target{}, fmt.Errorf("%w: URL %q has a bad port", ErrBadConfig, s)
		}
		t.host, t.port = h, n
	} else {
		t.host = strings.Trim(hostport, "[]")
	}
	if t.host == "" {
		return target{}, fmt.Errorf("%w: URL %q has no host", ErrBadConfig, s)
	}
	return t, nil
}

// resolveTarget returns the addresses of t.host: the literal itself, or
// what the resolver answers.
func resolveTarget(ctx context.Context, r Resolver, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// tlsHandshake runs the client handshake on c and classifies failures.
func tlsHandshake(ctx context.Context, c net.Conn, cfg *tls.Config, server string) (*tls.Conn, error) {
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, tlsError(server, err)
	}
	return tc, nil
}
