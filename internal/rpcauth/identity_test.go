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
		neg, err := gssapi.InitSecurityContext(client, &gssapi.Token{}, copts...)
		if err != nil {
			t.Fatal(err)
		}
		chal, err := gssapi.AcceptSecurityContext(server, neg, sopts...)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := gssapi.InitSecurityContext(client, chal, copts...)
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
