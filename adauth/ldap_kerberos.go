package adauth

import (
	"context"
	"errors"
	"strings"

	"github.com/lanconnect/lanconnect/internal/krb"
)

// saslMechGSSAPI is the SASL mechanism of a Kerberos bind (RFC 4752).
const saslMechGSSAPI = "GSSAPI"

// dcDNSName returns the DC's DNS name for its ldap/ SPN: ServerName when
// it is a DNS name, else the host p was dialled by, or "".
func (d *Directory) dcDNSName(p *preConn) string {
	for _, n := range []string{d.ServerName, p.host} {
		if _, err := krb.SPN(krb.LDAP, n); err == nil {
			return strings.TrimSuffix(n, ".")
		}
	}
	return ""
}

// kerberosPossible reports whether BindAuto can bind with Kerberos: a
// ticket cache, a domain account (or the cache's own ccache or keytab),
// a DC with a DNS name, TLS, and GSSAPI offered.
func (d *Directory) kerberosPossible(p *preConn, dse *rootDSE) bool {
	c := d.Credentials
	if d.Kerberos == nil || !p.isTLS || d.dcDNSName(p) == "" {
		return false
	}
	if len(dse.SASLMechanisms) > 0 && !dse.supportsSASL(saslMechGSSAPI) {
		return false
	}
	if c.IsZero() {
		return d.Kerberos.hasSecret()
	}
	if c.IsLocal() || c.User == "" || (!c.HasSecret() && !d.Kerberos.hasSecret()) {
		return false
	}
	return c.Domain != "" && !strings.HasPrefix(strings.ToUpper(c.User), "CN=")
}

// kerberosBind binds p with SASL GSSAPI as d.Credentials to ldap/FQDN of
// the DC, with a ticket from d.Kerberos: the AP-REQ, the DC's AP-REP
// (checked: mutual authentication), then the security-layer negotiation,
// choosing none (the connection is TLS).
func (d *Directory) kerberosBind(ctx context.Context, p *preConn, dse *rootDSE) error {
	if !p.isTLS {
		return opError(OpBind, p.server, "a Kerberos bind needs TLS (LDAPS or StartTLS)", ErrBindMethod, nil)
	}
	if len(dse.SASLMechanisms) > 0 && !dse.supportsSASL(saslMechGSSAPI) {
		return opError(OpBind, p.server, "server does not offer SASL GSSAPI (offers "+strings.Join(dse.SASLMechanisms, ", ")+")", ErrBindMethod, nil)
	}
	fqdn := d.dcDNSName(p)
	if fqdn == "" {
		return opError(OpBind, p.server, "a Kerberos bind needs the DC's DNS name (give it in the URL or as ServerName)", ErrBindMethod, krb.ErrNeedsDNSName)
	}
	spn, err := krb.SPN(krb.LDAP, fqdn)
	if err != nil {
		return opError(OpBind, p.server, "DC name", ErrBindMethod, err)
	}
	kc, err := d.Kerberos.credential(ctx, d.Credentials, fqdn)
	if err != nil {
		return kerberosBindErr(p.server, err)
	}
	gc, err := d.Kerberos.cache.LDAPClient(ctx, kc, spn)
	if err != nil {
		return kerberosBindErr(p.server, err)
	}
	defer func() { _ = gc.DeleteSecContext() }()
	var recv []byte
	needInit := true
	// RFC 4752: AP-REQ, AP-REP, then the security-layer offer and our
	// choice; a few round trips at most.
	for range 5 {
		var tok []byte
		if needInit {
			tok, needInit, err = gc.InitSecContext(spn, recv)
		} else {
			tok, err = gc.NegotiateSaslAuth(recv, "")
		}
		if err != nil {
			return kerberosBindErr(p.server, err)
		}
		r, err := p.exchange(ctx, bindRequest("", nil, saslMechGSSAPI, tok), appBindResponse)
		if err != nil {
			return bindErr(p.server, err)
		}
		if r.Code != ldapResultSuccess && r.Code != ldapResultSASLBind {
			return resultError(OpBind, p.server, r.Code, r.Diagnostic)
		}
		recv = r.SASLCreds
		if !needInit && len(recv) == 0 {
			if r.Code != ldapResultSuccess {
				return opError(OpBind, p.server, "the DC did not complete the Kerberos bind", ErrProtocol, nil)
			}
			d.logger().Debug("ldap: Kerberos bind", "dc", p.server, "spn", spn)
			return nil
		}
	}
	return opError(OpBind, p.server, "the Kerberos bind did not complete in 5 round trips", ErrProtocol, nil)
}

// kerberosBindErr wraps a Kerberos failure of a bind: its diagnosis
// (internal/krb's text) stays in the chain; errors.Is matches
// ErrBindMethod, or ErrBadCredentials for a refused secret.
func kerberosBindErr(server string, err error) error {
	kind := ErrBindMethod
	if errors.Is(err, krb.ErrWrongPassword) || errors.Is(err, krb.ErrPrincipalUnknown) || errors.Is(err, krb.ErrAccount) || errors.Is(err, ErrNoCredentials) {
		kind = ErrBadCredentials
	}
	return opError(OpBind, server, "Kerberos", kind, err)
}
