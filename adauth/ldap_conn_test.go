package adauth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"

	"github.com/lanconnect/lanconnect/discovery"
)

// scriptedServer answers LDAP requests on one end of a net.Pipe with a
// handler, for the error paths a real DC cannot be made to take.
type scriptedServer struct {
	t       *testing.T
	handler func(id int64, op *ber.Packet) []*ber.Packet // responses; nil closes the connection
}

func (s *scriptedServer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		for {
			msg, err := ber.ReadPacket(server)
			if err != nil {
				return
			}
			id := msg.Children[0].Value.(int64)
			resps := s.handler(id, msg.Children[1])
			if resps == nil {
				return
			}
			for _, r := range resps {
				if _, err := server.Write(r.Bytes()); err != nil {
					return
				}
			}
		}
	}()
	return client, nil
}

func ldapMsg(id int64, op *ber.Packet) *ber.Packet {
	m := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	m.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "id"))
	m.AppendChild(op)
	return m
}

func ldapResultOp(tag ber.Tag, code int, diag string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "result")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, "code"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, "diag"))
	return op
}

func rootDSEEntry(mechs ...string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchEntry, nil, "entry")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "dn"))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attrs")
	add := func(name string, vals ...string) {
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attr")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, "type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		for _, v := range vals {
			set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, "val"))
		}
		a.AppendChild(set)
		attrs.AppendChild(a)
	}
	add("defaultNamingContext", "DC=corp,DC=example")
	add("supportedSASLMechanisms", mechs...)
	op.AppendChild(attrs)
	return op
}

func noticeOfDisconnection(code int, diag string) *ber.Packet {
	op := ldapResultOp(appExtendedResponse, code, diag)
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, oidNoticeOfDiscon, "responseName"))
	return ldapMsg(0, op)
}

func scriptedDiscover(t *testing.T, d *Directory, handler func(id int64, op *ber.Packet) []*ber.Packet) error {
	t.Helper()
	s := &scriptedServer{t: t, handler: handler}
	d.Dial = s.dial
	if d.URL == "" && d.Domain == "" {
		d.URL = "ldap://192.0.2.1" // never dialled: Dial is the pipe
	}
	d.Timeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan discovery.Host, 16)
	return d.Discover(ctx, out)
}

func TestStartTLSRefused(t *testing.T) {
	err := scriptedDiscover(t, &Directory{}, func(id int64, op *ber.Packet) []*ber.Packet {
		if op.Tag != appExtendedRequest {
			t.Errorf("request %d before StartTLS", op.Tag)
			return nil
		}
		return []*ber.Packet{ldapMsg(id, ldapResultOp(appExtendedResponse, 2, "unsupported extended operation"))}
	})
	if !errors.Is(err, ErrPlaintextRefused) || !errors.Is(err, ErrTLS) {
		t.Fatalf("error %v, want ErrPlaintextRefused and ErrTLS", err)
	}
	var le *LDAPError
	if !errors.As(err, &le) || le.Op != OpTLS || le.Code != 2 {
		t.Fatalf("error %+v", le)
	}
}

func TestNoticeOfDisconnection(t *testing.T) {
	err := scriptedDiscover(t, &Directory{AllowPlaintext: true}, func(id int64, op *ber.Packet) []*ber.Packet {
		return []*ber.Packet{noticeOfDisconnection(52, "server shutting down")}
	})
	var le *LDAPError
	if !errors.As(err, &le) || le.Op != OpRootDSE || le.Code != 52 || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("error %v (%+v), want rootdse result 52", err, le)
	}
}

func TestNTLMNeedsGSSSPNEGO(t *testing.T) {
	c, _ := Parse(`CORP\alice`, "secret-pw")
	binds := 0
	err := scriptedDiscover(t, &Directory{AllowPlaintext: true, Credentials: c, Bind: BindNTLM}, func(id int64, op *ber.Packet) []*ber.Packet {
		switch op.Tag {
		case appSearchRequest:
			return []*ber.Packet{ldapMsg(id, rootDSEEntry("GSSAPI", "EXTERNAL")), ldapMsg(id, ldapResultOp(appSearchDone, 0, ""))}
		case appBindRequest:
			binds++
		}
		return nil
	})
	if !errors.Is(err, ErrBindMethod) || binds != 0 {
		t.Fatalf("error %v after %d binds, want ErrBindMethod before any bind", err, binds)
	}
	if strings.Contains(err.Error(), "secret-pw") {
		t.Fatal("error shows the password")
	}
}

func TestBindDropped(t *testing.T) {
	// What Samba does to go-ldap's Sicily NTLMBind: drop the connection.
	c, _ := Parse(`CORP\alice`, "secret-pw")
	err := scriptedDiscover(t, &Directory{AllowPlaintext: true, Credentials: c, Bind: BindNTLM}, func(id int64, op *ber.Packet) []*ber.Packet {
		if op.Tag == appSearchRequest {
			return []*ber.Packet{ldapMsg(id, rootDSEEntry("GSS-SPNEGO")), ldapMsg(id, ldapResultOp(appSearchDone, 0, ""))}
		}
		return nil
	})
	var le *LDAPError
	if !errors.As(err, &le) || le.Op != OpBind || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("error %v, want a bind error that says the connection was dropped", err)
	}
}

func TestSPNEGOReject(t *testing.T) {
	c, _ := Parse(`CORP\alice`, "secret-pw")
	rejected, _ := spnegoRejectToken()
	err := scriptedDiscover(t, &Directory{AllowPlaintext: true, Credentials: c, Bind: BindNTLM}, func(id int64, op *ber.Packet) []*ber.Packet {
		switch op.Tag {
		case appSearchRequest:
			return []*ber.Packet{ldapMsg(id, rootDSEEntry("GSS-SPNEGO")), ldapMsg(id, ldapResultOp(appSearchDone, 0, ""))}
		case appBindRequest:
			r := ldapResultOp(appBindResponse, ldapResultSASLBind, "")
			r.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 7, string(rejected), "serverSaslCreds"))
			return []*ber.Packet{ldapMsg(id, r)}
		}
		return nil
	})
	if !errors.Is(err, ErrBindMethod) {
		t.Fatalf("error %v, want ErrBindMethod", err)
	}
}

// spnegoRejectToken is a NegTokenResp with negState reject.
func spnegoRejectToken() ([]byte, error) {
	return spnegoResp(negTokenResp{NegState: negReject})
}

// srvDirectory returns a Directory that locates its DC through a fake SRV
// record (dc1.corp.example, 192.0.2.1, never dialled: Dial is the pipe).
func srvDirectory(c Credentials, bind BindMethod) *Directory {
	return &Directory{
		Domain: "corp.example", AllowPlaintext: true, Credentials: c, Bind: bind,
		Resolver: &fakeResolver{
			srv:   map[string][]*net.SRV{"_ldap._tcp.dc._msdcs.corp.example": {{Target: "dc1.corp.example.", Port: 389}}},
			hosts: map[string][]netip.Addr{"dc1.corp.example": {netip.MustParseAddr("192.0.2.1")}},
		},
	}
}

// bindKinds runs d against a scripted DC and returns the authentication
// choice of each bind request (0 simple, 3 SASL), and every byte the DC
// received.
func bindKinds(t *testing.T, d *Directory) ([]ber.Tag, string, error) {
	t.Helper()
	var kinds []ber.Tag
	var seen strings.Builder
	err := scriptedDiscover(t, d, func(id int64, op *ber.Packet) []*ber.Packet {
		seen.Write(op.Bytes())
		switch op.Tag {
		case appSearchRequest:
			return []*ber.Packet{ldapMsg(id, rootDSEEntry("GSS-SPNEGO")), ldapMsg(id, ldapResultOp(appSearchDone, 0, ""))}
		case appBindRequest:
			kinds = append(kinds, op.Children[2].Tag)
		}
		return nil // ends the exchange after the first bind
	})
	return kinds, seen.String(), err
}

// TestNoSimpleBindToSRVLocatedDC: a DC found through DNS SRV never gets a
// clear password. BindAuto binds with NTLM there; an explicit BindSimple
// is refused before any traffic with ErrSimpleBindLocated. With a URL,
// BindAuto still binds simply.
func TestNoSimpleBindToSRVLocatedDC(t *testing.T) {
	const pw = "Cl3ar-pw-9e1"
	c, _ := Parse(`CORP\alice`, pw)

	kinds, seen, _ := bindKinds(t, srvDirectory(c, BindAuto))
	if len(kinds) != 1 || kinds[0] != 3 {
		t.Fatalf("auto bind to an SRV-located DC: authentication choices %v, want one SASL (3)", kinds)
	}
	if strings.Contains(seen, pw) {
		t.Fatal("the clear password reached the SRV-located DC")
	}

	kinds, seen, err := bindKinds(t, srvDirectory(c, BindSimple))
	if !errors.Is(err, ErrSimpleBindLocated) || !errors.Is(err, ErrBindMethod) || len(kinds) != 0 || seen != "" {
		t.Fatalf("explicit simple bind to an SRV-located DC: %v after %d binds (%d bytes sent)", err, len(kinds), len(seen))
	}
	var le *LDAPError
	if !errors.As(err, &le) || le.Op != OpValidate || strings.Contains(err.Error(), pw) {
		t.Fatalf("error %v (%+v)", err, le)
	}

	// An explicit URL keeps the simple bind for a password.
	kinds, _, _ = bindKinds(t, &Directory{URL: "ldap://192.0.2.1", AllowPlaintext: true, Credentials: c})
	if len(kinds) != 1 || kinds[0] != 0 {
		t.Fatalf("auto bind with a URL: authentication choices %v, want one simple (0)", kinds)
	}
	// No credentials: no password to protect; an anonymous simple bind to
	// an SRV-located DC is not refused.
	if kinds, _, err := bindKinds(t, srvDirectory(Credentials{}, BindSimple)); errors.Is(err, ErrSimpleBindLocated) {
		t.Fatalf("anonymous: %v binds, err %v", kinds, err)
	}
}
