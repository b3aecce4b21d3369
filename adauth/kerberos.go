package adauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	smb2 "github.com/oiweiwei/go-smb2.fork"
	"github.com/oiweiwei/gokrb5.fork/v9/credentials"
	"github.com/oiweiwei/gokrb5.fork/v9/keytab"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/grantsess"
	"github.com/lanconnect/lanconnect/internal/krb"
)

// AuthPolicy says which authentication SMBAuthenticator may use (the
// connect -auth flag). The zero value is AuthAuto.
type AuthPolicy string

// The policies.
const (
	// AuthAuto uses Kerberos for a domain account (DOMAIN\user or
	// user@REALM) when the computer's DNS name is known and a Kerberos
	// ticket cache is configured (SMBAuthenticator.Kerberos), and NTLM
	// where Kerberos cannot work: an IP-only target, a local account, a
	// workgroup, or a domain for which no KDC can be found. It never
	// falls back to NTLM after Kerberos failed for another reason.
	AuthAuto AuthPolicy = "auto"
	// AuthKerberos uses Kerberos only; where it cannot work the logon
	// fails with a diagnosis (for example that Kerberos needs the
	// computer's DNS name).
	AuthKerberos AuthPolicy = "kerberos"
	// AuthNTLM uses NTLMv2 only, as the SDK did before Kerberos.
	AuthNTLM AuthPolicy = "ntlm"
)

// Authentication methods, as Facts.Auth reports them.
const (
	MethodKerberos = "kerberos"
	MethodNTLM     = "ntlm"
)

// ErrBadPolicy is matched by ParseAuthPolicy's errors.
var ErrBadPolicy = errors.New("adauth: unknown authentication policy")

// ParseAuthPolicy parses "auto", "kerberos" or "ntlm" (any case); empty
// means AuthAuto. Anything else fails with ErrBadPolicy.
func ParseAuthPolicy(s string) (AuthPolicy, error) {
	p, err := krb.ParsePolicy(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q (auto, kerberos or ntlm)", ErrBadPolicy, s)
	}
	return AuthPolicy(p), nil
}

// KerberosConfig says where a Kerberos ticket cache finds its KDCs and,
// optionally, a secret other than the password. The zero value finds
// KDCs through DNS SRV records (_kerberos._tcp.REALM) with the system
// resolver.
type KerberosConfig struct {
	// KDC is an explicit KDC address (host or host:port; port 88 by
	// default). It wins over every other source (connect -kdc).
	KDC string
	// KRB5Conf is a krb5.conf path whose [realms] kdc lines come before
	// DNS. /etc/krb5.conf and KRB5_CONFIG are never read implicitly.
	KRB5Conf string
	// DC is the domain controller given for LDAP, the last KDC source
	// tried.
	DC string
	// CCache is an MIT credentials cache file (a TGT made by kinit, as
	// KRB5CCNAME names it; "FILE:" is accepted). Credentials without a
	// secret use it: no password is sent anywhere.
	CCache string
	// Keytab is a keytab file with the keys of the account; credentials
	// without a secret use it.
	Keytab string
	// Resolver looks up SRV records and KDC names; nil means
	// net.DefaultResolver.
	Resolver *net.Resolver
	// Timeout bounds each KDC connection; 0 means 5 s.
	Timeout time.Duration
	// Logger receives debug messages (never secrets); nil discards them.
	Logger *slog.Logger
}

// Kerberos is a console's Kerberos ticket cache: one TGT per credential
// and one service ticket per computer and service, shared by every host
// and every SMBAuthenticator given it, so that a run over a thousand
// computers makes one AS exchange per credential. The caller makes it
// with NewKerberos, shares it, and closes it; there is no global cache.
// It is safe for concurrent use.
//
// It does not renew tickets in the background (an expired ticket is
// replaced at its next use), and a credential the KDC refused (wrong
// password, unknown or revoked account) is not sent to the KDC again by
// the same Kerberos: each try counts towards the account's lockout.
type Kerberos struct {
	cache *krb.Cache
	cc    *credentials.CCache
	kt    *keytab.Keytab
	// explicit reports a KDC given by address or krb5.conf: a NetBIOS
	// domain's realm may then come from the computer's DNS name alone.
	explicit bool
}

// NewKerberos returns a ticket cache with cfg. It reads CCache and
// Keytab when given (errors match ErrBadCredentials and never show a
// key); it contacts no KDC.
func NewKerberos(cfg KerberosConfig) (*Kerberos, error) {
	k := &Kerberos{explicit: cfg.KDC != "" || cfg.KRB5Conf != ""}
	if cfg.CCache != "" {
		cc, err := krb.LoadCCache(cfg.CCache)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadCredentials, err)
		}
		k.cc = cc
	}
	if cfg.Keytab != "" {
		kt, err := krb.LoadKeytab(cfg.Keytab)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadCredentials, err)
		}
		k.kt = kt
	}
	k.cache = krb.NewCache(krb.Config{KDC: cfg.KDC, KRB5Conf: cfg.KRB5Conf, DC: cfg.DC, Resolver: cfg.Resolver, Timeout: cfg.Timeout, Logger: cfg.Logger})
	return k, nil
}

// Close forgets every ticket and key. It is safe on a nil Kerberos.
func (k *Kerberos) Close() error {
	if k == nil || k.cache == nil {
		return nil
	}
	return k.cache.Close()
}

// KerberosStats counts the KDC traffic of a Kerberos, as seen on the
// wire.
type KerberosStats struct {
	// ASExchanges counts TGTs obtained or attempted: one per credential
	// while its TGT is valid.
	ASExchanges int64 `json:"as_exchanges"`
	// ASReqs counts AS-REQ messages (a password logon sends two: the
	// first is answered "pre-authentication required").
	ASReqs int64 `json:"as_reqs"`
	// TGSReqs counts TGS-REQ messages: one per computer and service.
	TGSReqs int64 `json:"tgs_reqs"`
	// Dials counts connections to KDCs.
	Dials int64 `json:"dials"`
}

// Stats returns the KDC traffic so far; zero on a nil Kerberos.
func (k *Kerberos) Stats() KerberosStats {
	if k == nil || k.cache == nil {
		return KerberosStats{}
	}
	s := k.cache.Stats()
	return KerberosStats{ASExchanges: s.ASExchanges, ASReqs: s.ASReqs, TGSReqs: s.TGSReqs, Dials: s.Dials}
}

// CCacheAccount returns the account of the CCache's default principal as
// "user@REALM", or "" when no ccache was given: a console without -user
// uses it as the account.
func (k *Kerberos) CCacheAccount() string {
	if k == nil || k.cc == nil {
		return ""
	}
	p := k.cc.DefaultPrincipal
	return strings.Join(p.PrincipalName.NameString, "/") + "@" + strings.ToUpper(p.Realm)
}

// hasSecret reports whether k holds a secret of its own (ccache or
// keytab), so that credentials without a password can log on.
func (k *Kerberos) hasSecret() bool { return k != nil && (k.cc != nil || k.kt != nil) }

// credential turns creds into a Kerberos credential for a logon to the
// computer fqdn: the realm is the account's DNS domain, or, for a
// NetBIOS domain, the computer's realm; the secret is the password or NT
// hash, else the keytab, else the ccache.
func (k *Kerberos) credential(ctx context.Context, creds Credentials, fqdn string) (krb.Credential, error) {
	c := krb.Credential{User: creds.User}
	switch d := creds.Domain; {
	case c.User == "":
		// The ccache's own principal and realm (below).
	case strings.Contains(d, "."):
		c.Realm = strings.ToUpper(d)
	default:
		r, err := k.cache.RealmOf(ctx, fqdn)
		if err != nil {
			if !k.explicit || !errors.Is(err, krb.ErrNoKDC) {
				return krb.Credential{}, err
			}
			_, parent, _ := strings.Cut(strings.TrimSuffix(fqdn, "."), ".")
			r = strings.ToUpper(parent)
		}
		c.Realm = r
	}
	if p, ok := creds.Password(); ok {
		c.Password = p
		return c, nil
	}
	if h := creds.NTHash(); h != nil {
		c.NTHash = h
		return c, nil
	}
	if k.kt != nil {
		c.Keytab = k.kt
		return c, nil
	}
	if k.cc != nil {
		c.CCache = k.cc
		if c.User == "" {
			c.Realm = ""
		}
		return c, nil
	}
	return krb.Credential{}, ErrNoCredentials
}

type dnsNameKey struct{}

// WithDNSName returns a context that tells SMBAuthenticator the
// computer's DNS name (from discovery or DNS), which Kerberos needs to
// name the service (cifs/FQDN) when the address dialled is an IP
// address. Without it, the authenticator uses the expected name
// (WithExpectedName) when that is a DNS name, else the address when it
// is one. It does not resolve anything.
func WithDNSName(ctx context.Context, fqdn string) context.Context {
	return context.WithValue(ctx, dnsNameKey{}, fqdn)
}

// targetDNSName returns the computer's DNS name for Kerberos, or "": the
// name given with WithDNSName, else an expected name or an address that
// is a DNS name (at least one dot, not an IP literal).
func targetDNSName(ctx context.Context, host string) string {
	isDNS := func(s string) bool {
		s = strings.TrimSuffix(strings.TrimSpace(s), ".")
		if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
			return false
		}
		return strings.Contains(s, ".")
	}
	if s, _ := ctx.Value(dnsNameKey{}).(string); isDNS(s) {
		return strings.TrimSuffix(strings.TrimSpace(s), ".")
	}
	if s := ExpectedName(ctx); isDNS(s) {
		return strings.TrimSuffix(strings.TrimSpace(s), ".")
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if isDNS(host) {
		return strings.TrimSuffix(strings.TrimSpace(host), ".")
	}
	return ""
}

// choose applies the policy to one logon: it returns MethodKerberos or
// MethodNTLM and, for Kerberos, the computer's DNS name; or a diagnosis
// when neither can work.
func (a *SMBAuthenticator) choose(ctx context.Context, host string, creds Credentials) (string, string, *AuthError) {
	account := creds.Account()
	pol, err := ParseAuthPolicy(string(a.Auth))
	if err != nil {
		return "", "", &AuthError{Addr: host, Account: account, Step: StepLogon, Kind: ErrKerberos, Err: err,
			Diagnosis: diag.Diagnosis{Code: diag.Other, Summary: "The authentication policy " + fmt.Sprintf("%q", a.Auth) + " is unknown.", Fix: "Use auto, kerberos or ntlm."}}
	}
	fqdn := targetDNSName(ctx, host)
	if pol == AuthNTLM || (pol == AuthAuto && a.Kerberos == nil) {
		return MethodNTLM, "", nil
	}
	if a.Kerberos == nil {
		return "", "", &AuthError{Addr: host, Account: account, Step: StepLogon, Kind: ErrKerberos, Err: errors.New("adauth: SMBAuthenticator.Kerberos is nil"),
			Diagnosis: diag.Diagnosis{Code: diag.KerberosNotConfigured, Summary: "Kerberos was required but this console has no Kerberos ticket cache.", Fix: "Give the authenticator an adauth.Kerberos."}}
	}
	acct := account
	if creds.User == "" {
		if cc := a.Kerberos.CCacheAccount(); cc != "" {
			acct = cc
		}
	}
	netbios := ""
	if fqdn != "" {
		netbios, _, _ = strings.Cut(fqdn, ".")
	}
	m, err := krb.Choose(krb.Choice{Policy: krb.Policy(pol), Account: acct, DNSName: fqdn, NetBIOSName: netbios})
	if err != nil {
		return "", "", krbAuthError(host, account, err)
	}
	return string(m), fqdn, nil
}

// kerberosInitiator gets the service ticket for cifs/fqdn (one AS
// exchange per credential and one TGS exchange per computer, through the
// shared cache) and returns the SMB initiator and the SPN.
func (a *SMBAuthenticator) kerberosInitiator(ctx context.Context, host, fqdn string, creds Credentials) (smb2.Initiator, string, krb.Credential, *AuthError) {
	account := creds.Account()
	spn, err := krb.SPN(krb.CIFS, fqdn)
	if err != nil {
		return nil, "", krb.Credential{}, krbAuthError(host, account, err)
	}
	kc, err := a.Kerberos.credential(ctx, creds, fqdn)
	if err != nil {
		if errors.Is(err, ErrNoCredentials) {
			return nil, "", krb.Credential{}, &AuthError{Addr: host, Account: account, Step: StepLogon, Kind: ErrNoCredentials, Retryable: true,
				Diagnosis: diag.Diagnosis{Code: diag.NoCredentials, Summary: "No password, keytab or ticket cache was given for " + account + ".", Fix: "Enter the account's password, or give a ccache (-ccache) or keytab (-keytab)."},
				Err:       ErrNoCredentials}
		}
		if ae := krbAuthError(host, account, err); ae != nil {
			return nil, "", krb.Credential{}, ae
		}
		return nil, "", krb.Credential{}, connErr(host, account, StepLogon, err)
	}
	in, err := a.Kerberos.cache.Initiator(ctx, kc, spn)
	if err != nil {
		if ae := krbAuthError(host, account, err); ae != nil {
			return nil, "", krb.Credential{}, ae
		}
		return nil, "", krb.Credential{}, connErr(host, account, StepLogon, err)
	}
	a.logger().Debug("kerberos logon", "host", host, "spn", spn, "principal", kc.User+"@"+kc.Realm)
	return in, spn, kc, nil
}

// rpc returns the KerberosRPC of a grant to the computer fqdn logged on
// as cred: each call gets the service ticket for class/fqdn from the
// shared cache (one TGS exchange per class and computer) and a security
// context of its own.
func (k *Kerberos) rpc(fqdn string, cred krb.Credential) grantsess.KerberosRPC {
	return func(ctx context.Context, class string, seal bool) ([]dcerpc.Option, error) {
		spn, err := krb.SPN(class, fqdn)
		if err != nil {
			return nil, err
		}
		return k.cache.RPCOptions(ctx, cred, spn, seal)
	}
}
