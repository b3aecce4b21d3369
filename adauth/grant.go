package adauth

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/lanconnect/lanconnect/internal/grantsess"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// Grant is an authenticated SMB session to one computer whose account has
// been proved to be administrator there. It carries what was learned on
// the way (Facts) and lends its session to file copy (package deploy)
// and to RPC over named pipes (the launchers), so the computer sees one
// logon. It is safe for concurrent use. Close it when done.
//
// A Grant prints without its credentials' secret.
type Grant struct {
	// Addr is the name or address the grant was made for, as dialled.
	Addr string
	// Credentials are the credentials that were proved.
	Credentials Credentials
	// Facts are what the computer negotiated and revealed.
	Facts Facts

	session *smbconn.Session
	// krbRPC is set for a Kerberos logon: RPC binds of the launchers to
	// the same computer use it (internal/grantsess.Kerberos).
	krbRPC grantsess.KerberosRPC
}

// Facts are what authentication learned about a computer and a session.
type Facts struct {
	// Auth is the authentication used: MethodKerberos ("kerberos") or
	// MethodNTLM ("ntlm").
	Auth string `json:"auth"`
	// SPN is the service principal name of a Kerberos logon
	// (cifs/FQDN); empty for NTLM.
	SPN string `json:"spn,omitempty"`
	// Dialect is the SMB dialect, for example "3.1.1".
	Dialect string `json:"dialect"`
	// Transport is what carried the session: TransportTCP445 or
	// TransportNBT139.
	Transport string `json:"transport"`
	// Signed and Encrypted describe the session's protection.
	Signed    bool `json:"signed"`
	Encrypted bool `json:"encrypted"`
	// EncryptionMissing reports that encryption was asked for
	// (EncryptPreferred, the default) but the session is not encrypted:
	// the computer speaks SMB 2.x only or offers no cipher. The session is
	// signed. With EncryptRequired such a computer fails with
	// ErrEncryption instead.
	EncryptionMissing bool `json:"encryption_missing,omitempty"`
	// NegotiationValidated reports that the SMB negotiation is protected
	// against a man in the middle (SMB 3.1.1 preauth integrity, or a
	// matching FSCTL_VALIDATE_NEGOTIATE_INFO on 3.0/3.0.2); false on SMB
	// 2.x.
	NegotiationValidated bool `json:"negotiation_validated"`
	// ServerRequiresSigning is the computer's own requirement.
	ServerRequiresSigning bool `json:"server_requires_signing"`
	// Server is the computer's identity from its NTLM challenge.
	Server ServerInfo `json:"server"`
	// LocalAccount reports whether the account is local to the computer
	// (".\user", "COMPUTER\user", or a bare user on a workgroup computer).
	LocalAccount bool `json:"local_account"`
	// AccountRID is the relative ID of a local account, as the computer's
	// LSA reports it (0 when unknown or not local); BuiltinAdministrator
	// reports RID 500, the account UAC remote restrictions spare by
	// default.
	AccountRID           uint32 `json:"account_rid,omitempty"`
	BuiltinAdministrator bool   `json:"builtin_administrator"`
	// Checks lists the admin checks in the order they ran.
	Checks []CheckResult `json:"checks"`
	// ProbeLeftover names the ADMIN$ probe file when it could not be
	// deleted (empty normally).
	ProbeLeftover string `json:"probe_leftover,omitempty"`
	// LogonTook is the time to connect and log on; Took includes the
	// admin checks.
	LogonTook time.Duration `json:"logon_took"`
	Took      time.Duration `json:"took"`
}

// ServerInfo is the computer's identity as its NTLM CHALLENGE tells it.
// Fields it did not send are empty.
type ServerInfo struct {
	NetBIOSName   string    `json:"netbios_name,omitempty"`
	NetBIOSDomain string    `json:"netbios_domain,omitempty"`
	DNSName       string    `json:"dns_name,omitempty"`
	DNSDomain     string    `json:"dns_domain,omitempty"`
	DNSForest     string    `json:"dns_forest,omitempty"`
	OSVersion     string    `json:"os_version,omitempty"` // e.g. "10.0.20348"
	DomainJoined  bool      `json:"domain_joined"`
	Time          time.Time `json:"time,omitzero"`
}

// CheckResult is the outcome of one admin check.
type CheckResult struct {
	Name   string        `json:"name"` // CheckAdminShareWrite or CheckSCMCreate
	Passed bool          `json:"passed"`
	Took   time.Duration `json:"took"`
	Detail string        `json:"detail,omitempty"`
}

func factsFrom(info smbconn.Info, local bool) Facts {
	f := Facts{
		Dialect:               info.Dialect.String(),
		Transport:             string(info.Transport),
		Signed:                info.Signed,
		Encrypted:             info.Encrypted,
		NegotiationValidated:  info.NegotiationValidated,
		ServerRequiresSigning: info.ServerRequiresSigning,
		LocalAccount:          local,
	}
	if info.HasChallenge {
		c := info.Challenge
		f.Server = ServerInfo{
			NetBIOSName: c.NetBIOSComputer, NetBIOSDomain: c.NetBIOSDomain,
			DNSName: c.DNSComputer, DNSDomain: c.DNSDomain, DNSForest: c.DNSTree,
			DomainJoined: c.DomainJoined(), Time: c.Timestamp,
		}
		if c.Version != nil {
			f.Server.OSVersion = c.Version.String()
		}
	}
	return f
}

// Identity returns the computer name the computer gave in its NTLM
// CHALLENGE at the grant's logon: its NetBIOS name, else its DNS name, or
// "" when it gave none. Launchers that open NTLM connections of their own
// to the computer (RPC over TCP) expect it, so that a connection that
// reaches another computer fails before credentials are sent. It is the
// computer's claim, checked against the expected name when there was one
// (WithExpectedName).
func (g *Grant) Identity() string {
	if g == nil {
		return ""
	}
	if g.Facts.Server.NetBIOSName != "" {
		return g.Facts.Server.NetBIOSName
	}
	return g.Facts.Server.DNSName
}

// RemoteAddr returns the address the grant's SMB session is connected to
// (the target's own address as this machine reaches it), or the zero
// netip.Addr for a zero Grant. It does not resolve names.
func (g *Grant) RemoteAddr() netip.Addr {
	if g == nil || g.session == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(g.session.Info().Addr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// The packages of this module (deploy, the launchers) borrow the grant's
// SMB session through internal/grantsess, which adauth tells how to read
// it; it is not part of the exported API.
func init() {
	grantsess.Register(func(v any) *smbconn.Session {
		if g, ok := v.(*Grant); ok && g != nil {
			return g.session
		}
		return nil
	})
	grantsess.RegisterKerberos(func(v any) grantsess.KerberosRPC {
		if g, ok := v.(*Grant); ok && g != nil {
			return g.krbRPC
		}
		return nil
	})
}

// OpenPipe opens the named pipe name (for example "winreg" or "svcctl")
// on the grant's session and returns it as a net.Conn that carries RPC
// PDUs. ctx bounds the open only. The caller closes the conn.
func (g *Grant) OpenPipe(ctx context.Context, name string) (net.Conn, error) {
	if g == nil || g.session == nil {
		return nil, &smbconn.Error{Op: "open pipe " + name, Err: smbconn.ErrClosed}
	}
	return g.session.OpenPipe(ctx, name)
}

// PipeDialer returns a dialer that opens the named pipe name on the
// grant's session at each DialContext, ignoring network and address. Its
// method set matches go-msrpc's dcerpc.Dialer, so a launcher passes it to
// dcerpc.WithDialer with a placeholder ncacn_ip_tcp binding and its RPC
// runs over this session without a second logon. Make the placeholder an
// IP literal, for example "ncacn_ip_tcp:127.0.0.1[1]": go-msrpc resolves a
// host name through DNS before it dials, even though this dialer ignores
// the address. Use one dcerpc.Dial per pipe: Samba rejects a second
// interface bound on the first one's association group.
//
// adauth keeps go-msrpc out of its API on purpose: callers choose their
// own RPC options (sealing, for instance) on top of the pipe.
func (g *Grant) PipeDialer(name string) PipeDialer {
	return PipeDialer{g: g, pipe: name}
}

// pipePlaceholder is the binding handed to dcerpc.Dial with a
// PipeDialer. go-msrpc resolves the host of a binding through DNS before
// it dials, so the placeholder is an IP literal: it is never dialled, and
// nothing is looked up.
const pipePlaceholder = "ncacn_ip_tcp:127.0.0.1[1]"

// PipeDialer opens one named pipe of a Grant per DialContext call.
type PipeDialer struct {
	g    *Grant
	pipe string
}

// DialContext opens the pipe; network and address are ignored.
func (d PipeDialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	return d.g.OpenPipe(ctx, d.pipe)
}

// Close logs off and closes the connection. It is safe to call more than
// once and on a nil Grant.
func (g *Grant) Close() error {
	if g == nil || g.session == nil {
		return nil
	}
	return g.session.Close()
}
