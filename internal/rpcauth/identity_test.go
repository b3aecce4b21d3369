package rpcauth

import (
	"context"
	"errors"
	"testing"

	"github.com/oiweiwei/go-msrpc/ssp/credential"
	"github.com/oiweiwei/go-msrpc/ssp/gssapi"
	"github.com/oiweiwei/go-msrpc/ssp/name"
	"github.com/oiweiwei/go-msrpc/ssp/ntlm"

	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// TestVerifyingNTLMChecksIdentity runs the client side against go-msrpc's
// acceptor that calls itself SRV (srv): expecting SRV or srv.lab
// produces an AUTHENTICATE; expecting OTHER fails before one is made.
func TestVerifyingNTLMChecksIdentity(t *testing.T) {
	for _, c := range []struct {
		expect string
		ok     bool
	}{{"SRV", true}, {"srv.lab.example", true}, {"", true}, {"10.0.0.9", true}, {"OTHER", false}, {"srv2.lab.example", false}} {
		client := gssapi.NewSecurityContext(context.Background(),
			gssapi.WithCredential(credential.NewFromPassword("tester", "not-a-real-secret-1", credential.Domain("WG"))),
			gssapi.WithMechanismFactory(VerifyingNTLM{Expect: c.expect}))
		server := gssapi.NewSecurityContext(context.Background(), gssapi.WithMechanismFactory(ntlm.Mechanism{}))
		copts := []gssapi.Option{gssapi.WithMechanismType(ntlm.MechanismType), gssapi.WithRequest(sealCaps)}
		sopts := []gssapi.Option{gssapi.WithMechanismType(ntlm.MechanismType), gssapi.WithRequest(sealCaps),
			gssapi.WithCredentialDatabase(gssapi.NewCredentialDatabase(credential.Database(testDB{"tester", "not-a-real-secret-1"}))),
			gssapi.WithServerNames(name.NetBIOS("SRV", name.Domain("WG")), name.DNS("srv"))}
		auth, err := authenticate(t, client, server, copts, sopts)
		if c.ok {
			if err != nil || auth == nil || len(auth.Payload) == 0 {
				t.Errorf("expect %q: %v, want an AUTHENTICATE", c.expect, err)
			}
			continue
		}
		var ie *smbconn.IdentityError
		if !errors.Is(err, smbconn.ErrIdentityMismatch) || !errors.As(err, &ie) || ie.NetBIOSComputer != "SRV" {
			t.Errorf("expect %q: err %v, want an identity mismatch naming SRV", c.expect, err)
		}
		if auth != nil && len(auth.Payload) > 0 {
			t.Errorf("expect %q: an AUTHENTICATE was made", c.expect)
		}
	}
}

// recordingDB is testDB that records the domain of every AUTHENTICATE it
// is asked about.
type recordingDB struct {
	testDB
	domains *[]string
}

func (d recordingDB) Lookup(ctx context.Context, c credential.Credential) (credential.Credential, bool) {
	if c != nil {
		*d.domains = append(*d.domains, c.DomainName())
	}
	return d.testDB.Lookup(ctx, c)
}

// TestLocalAccountDomainOnRPC: a local account (".\user") logs on over RPC
// as COMPUTER\user, the computer's NetBIOS name taken from the CHALLENGE
// of a domain member (SRV in domain CORP), as on SMB; a domain account
// keeps its domain. Before, the AUTHENTICATE of ".\user" carried an empty
// domain, which a domain member looks up in its domain.
func TestLocalAccountDomainOnRPC(t *testing.T) {
	const pass = "not-a-real-secret-2"
	for _, c := range []struct {
		account, want string
		hash          bool
	}{{`.\tester`, "SRV", false}, {`.\tester`, "SRV", true}, {`CORP\tester`, "CORP", false}, {`tester`, "", false}} {
		creds := fakeCreds{account: c.account, password: pass}
		if c.hash {
			creds = fakeCreds{account: c.account, hash: ntHash(pass)}
		}
		mech, cred, err := ntlmSecurity(creds, "")
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		client := gssapi.NewSecurityContext(context.Background(), gssapi.WithCredential(cred), gssapi.WithMechanismFactory(mech))
		server := gssapi.NewSecurityContext(context.Background(), gssapi.WithMechanismFactory(ntlm.Mechanism{}))
		copts := []gssapi.Option{gssapi.WithMechanismType(ntlm.MechanismType), gssapi.WithRequest(sealCaps)}
		sopts := []gssapi.Option{gssapi.WithMechanismType(ntlm.MechanismType), gssapi.WithRequest(sealCaps),
			gssapi.WithCredentialDatabase(gssapi.NewCredentialDatabase(credential.Database(recordingDB{testDB{"tester", pass}, &seen}))),
			gssapi.WithServerNames(name.NetBIOS("SRV", name.Domain("CORP")), name.DNS("srv"))}
		auth, err := authenticate(t, client, server, copts, sopts)
		if err != nil {
			t.Fatalf("%s: authenticate: %v", c.account, err)
		}
		if _, err := gssapi.AcceptSecurityContext(server, auth, sopts...); err != nil {
			t.Fatalf("%s: the acceptor refused the AUTHENTICATE: %v", c.account, err)
		}
		if len(seen) != 1 || seen[0] != c.want {
			t.Errorf("%s (hash %v): AUTHENTICATE domains %q, want [%q]", c.account, c.hash, seen, c.want)
		}
	}
}

// ntHash is the NT hash of a password (MD4 of its UTF-16LE form).
func ntHash(pass string) []byte {
	h, err := (&ntlm.V1{}).NTOWF(context.Background(), credential.NewFromPassword("x", pass))
	if err != nil {
		panic(err)
	}
	return h
}

// authenticate runs NEGOTIATE and CHALLENGE between client and server and
// returns the client's answer to the CHALLENGE (its AUTHENTICATE).
func authenticate(t *testing.T, client, server context.Context, copts, sopts []gssapi.Option) (*gssapi.Token, error) {
	t.Helper()
	neg, err := gssapi.InitSecurityContext(client, &gssapi.Token{}, copts...)
	if err != nil {
		t.Fatal(err)
	}
	chal, err := gssapi.AcceptSecurityContext(server, neg, sopts...)
	if err != nil {
		t.Fatal(err)
	}
	return gssapi.InitSecurityContext(client, chal, copts...)
}
