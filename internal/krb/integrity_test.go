package krb

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/oiweiwei/go-msrpc/ssp/gssapi"
	"github.com/oiweiwei/go-msrpc/ssp/krb5"

	krbcrypto "github.com/oiweiwei/go-msrpc/ssp/krb5/crypto"
	"github.com/oiweiwei/gokrb5.fork/v9/crypto"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/etypeID"
	"github.com/oiweiwei/gokrb5.fork/v9/types"
)

// TestSealedIntegrity backs the claim of RPCOptions' doc: unlike its NTLM
// mechanism, go-msrpc's Kerberos ciphers reject a sealed PDU whose body
// was changed on the way (a flipped bit), for the encryption types an AD
// domain negotiates. (Its mechanism turns a failed check into an error,
// which go-msrpc's DCE/RPC layer returns.)
func TestSealedIntegrity(t *testing.T) {
	ctx := context.Background()
	for _, et := range []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.RC4_HMAC} {
		e, err := crypto.GetEtype(et)
		if err != nil {
			t.Fatal(err)
		}
		key := types.EncryptionKey{KeyType: et, KeyValue: make([]byte, e.GetKeyByteSize())}
		_, _ = rand.Read(key.KeyValue)
		mk := func() krbcrypto.Cipher {
			c, err := krbcrypto.NewCipher(ctx, krbcrypto.CipherSetting{Key: key, Type: e, IsSubKey: true, DCEStyle: true})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		// go-msrpc wraps the acceptor's PDUs with the acceptor's cipher
		// settings (IsLocal false) and the initiator unwraps them with the
		// same settings (its "inbound" cipher): two instances of it.
		server, client := mk(), mk()
		for _, tamper := range []bool{false, true} {
			hdr := []byte("dce/rpc header and verifier trailer")
			plain := bytes.Repeat([]byte("OpenSCManagerW response stub "), 4)
			body := append([]byte(nil), plain...)
			sgn, err := server.WrapEx(ctx, 7, [][]byte{hdr, body}, [][]byte{body})
			if err != nil {
				t.Fatalf("etype %d: wrap: %v", et, err)
			}
			if bytes.Equal(body, plain) {
				t.Fatalf("etype %d: the body was not sealed", et)
			}
			if tamper {
				body[5] ^= 0x08
			}
			ok, err := client.UnwrapEx(ctx, 7, [][]byte{hdr, body}, [][]byte{body}, sgn)
			switch {
			case !tamper && (!ok || err != nil || !bytes.Equal(body, plain)):
				t.Errorf("etype %d: intact PDU: ok %v, err %v, body %q", et, ok, err, body)
			case tamper && ok && err == nil:
				t.Errorf("etype %d: a flipped bit in a sealed body was accepted", et)
			}
		}
	}
}

// TestVerifierNeverPanics: whatever verifier arrives (none, short, or a
// full-length token on a mechanism whose context never completed, where
// go-msrpc's decoder dereferences nil state), the checking mechanism
// returns ErrIntegrity instead of panicking, and stays failed.
func TestVerifierNeverPanics(t *testing.T) {
	ctx := context.Background()
	for _, sig := range [][]byte{nil, make([]byte, 8), bytes.Repeat([]byte{0x05, 0x04, 0x07, 0xff}, 16)} {
		// go-msrpc's mechanism with no established context: its unwrap
		// dereferences nil state.
		v := &krbVerifier{Mechanism: &krb5.Mechanism{}}
		tok := &gssapi.MessageTokenEx{Signature: sig, Payloads: []*gssapi.PayloadEx{{Payload: []byte("stub"), Capabilities: gssapi.Integrity | gssapi.Confidentiality}}}
		_, err := v.UnwrapEx(ctx, tok)
		if !errors.Is(err, ErrIntegrity) {
			t.Errorf("%d-byte verifier: err = %v, want ErrIntegrity", len(sig), err)
		}
		if len(sig) >= minToken && !strings.Contains(fmt.Sprint(err), "does not decode") {
			t.Errorf("%d-byte verifier: err = %v, want the decoder's panic turned into an error", len(sig), err)
		}
		if err := v.VerifySignatureEx(ctx, tok); !errors.Is(err, ErrIntegrity) {
			t.Errorf("%d-byte verifier: after a failure, err = %v, want ErrIntegrity", len(sig), err)
		}
	}
}
