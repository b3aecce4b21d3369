package winemu

import (
	"bytes"
	"crypto/rc4"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/oiweiwei/go-msrpc/ssp/ntlm"

	"github.com/lanconnect/lanconnect/internal/winenc"
)

// testNegotiate is a client NEGOTIATE asking for what impacket 0.10 asks
// for at packet privacy (no VERSION flag).
func testNegotiate(flags ntlm.Flag) []byte {
	b := make([]byte, 32)
	copy(b, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(b[8:], ntlmMsgNegotiate)
	binary.LittleEndian.PutUint32(b[12:], uint32(flags))
	return b
}

const testClientFlags = ntlm.NegotiateUnicode | ntlm.RequestTarget | ntlm.NegotiateSign | ntlm.NegotiateSeal |
	ntlm.NegotiateNTLM | ntlm.NegotiateAlwaysSign | ntlm.NegotiateExtendedSessionSecurity |
	ntlm.NegotiateTargetInfo | ntlm.Negotiate128 | ntlm.NegotiateKeyExchange | ntlm.Negotiate56

// authSpec describes one AUTHENTICATE message the test client builds.
type authSpec struct {
	user, domain, password string
	version                bool   // carry the 8-byte Version field
	mic                    bool   // set MsvAvFlags 0x2 and carry a MIC
	badMIC                 bool   // ... a wrong one
	tamperProof            bool   // flip a bit of NTProofStr
	ntLen                  int    // force an NT response of this length (0: NTLMv2)
	sessionKey             []byte // with KEY_EXCH, the client's random session key
}

// buildAuthenticate is an independent NTLMv2 client (MS-NLMP 3.1.5.1.2,
// 3.3.2) for the acceptor's tests.
func buildAuthenticate(t *testing.T, n *ntlmAcceptor, negotiate []byte, s authSpec) []byte {
	t.Helper()
	nth, _ := accountNTHash(User{Password: s.password})
	respKey := hmacMD5(nth, winenc.EncodeUTF16LE(strings.ToUpper(s.user)+s.domain))
	var av bytes.Buffer
	pair := func(id uint16, v []byte) {
		_ = binary.Write(&av, binary.LittleEndian, id)
		_ = binary.Write(&av, binary.LittleEndian, uint16(len(v)))
		av.Write(v)
	}
	pair(1, winenc.EncodeUTF16LE(n.nb))
	if s.mic {
		pair(avFlags, []byte{avFlagMIC, 0, 0, 0})
	}
	pair(avEOL, nil)
	blob := append([]byte{1, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0}, av.Bytes()...)
	blob = append(blob, 0, 0, 0, 0)
	proof := hmacMD5(respKey, n.serverChallenge, blob)
	nt := append(append([]byte(nil), proof...), blob...)
	if s.tamperProof {
		nt[3] ^= 0x10
	}
	if s.ntLen > 0 {
		nt = nt[:s.ntLen]
	}
	flags := n.flags
	exported := hmacMD5(respKey, proof)
	var encKey []byte
	if s.sessionKey != nil {
		c, _ := rc4.NewCipher(exported)
		encKey = make([]byte, 16)
		c.XORKeyStream(encKey, s.sessionKey)
		exported = s.sessionKey
	} else {
		flags &^= ntlm.NegotiateKeyExchange
	}
	if s.version {
		flags |= ntlm.NegotiateVersion
	} else {
		flags &^= ntlm.NegotiateVersion
	}
	hdr := ntlmAuthHeaderSize
	if s.version || s.mic {
		hdr = ntlmMICOffset
	}
	if s.mic {
		hdr += 16
	}
	msg := make([]byte, hdr)
	copy(msg, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(msg[8:], ntlmMsgAuthenticate)
	put := func(at int, v []byte) {
		binary.LittleEndian.PutUint16(msg[at:], uint16(len(v)))
		binary.LittleEndian.PutUint16(msg[at+2:], uint16(len(v)))
		binary.LittleEndian.PutUint32(msg[at+4:], uint32(len(msg)))
		msg = append(msg, v...)
	}
	put(28, winenc.EncodeUTF16LE(s.domain))
	put(36, winenc.EncodeUTF16LE(s.user))
	put(44, winenc.EncodeUTF16LE("CLIENT"))
	put(12, make([]byte, 24))
	put(20, nt)
	put(52, encKey)
	binary.LittleEndian.PutUint32(msg[60:], uint32(flags))
	if s.version {
		copy(msg[64:], []byte{10, 0, 0x61, 0x4a, 0, 0, 0, 15})
	}
	if s.mic {
		mic := hmacMD5(exported, negotiate, n.challenge, msg)
		if s.badMIC {
			mic[0] ^= 1
		}
		copy(msg[ntlmMICOffset:], mic)
	}
	return msg
}

func newTestAcceptor(t *testing.T, users map[string]User) (*ntlmAcceptor, []byte) {
	t.Helper()
	n := &ntlmAcceptor{users: users, nb: "TARGET1", nbDom: "WORKGROUP", dns: "target1"}
	neg := testNegotiate(testClientFlags)
	if _, err := n.accept(neg); err != nil {
		t.Fatalf("accept NEGOTIATE: %v", err)
	}
	return n, neg
}

func TestNTLMAcceptorLikeWindows(t *testing.T) {
	users := map[string]User{"Administrator": {Password: "Adm1n-Passw0rd", Admin: true}}
	random := bytes.Repeat([]byte{0x5a}, 16)
	cases := []struct {
		name    string
		spec    authSpec
		wantErr string
	}{
		{"no MIC no Version (impacket, older Windows)", authSpec{}, ""},
		{"no MIC no Version with KEY_EXCH", authSpec{sessionKey: random}, ""},
		{"MIC and Version (Windows, go-msrpc)", authSpec{version: true, mic: true, sessionKey: random}, ""},
		{"MIC without KEY_EXCH", authSpec{version: true, mic: true}, ""},
		{"Version without MIC", authSpec{version: true}, ""},
		{"wrong password", authSpec{password: "wrong"}, "NTProofStr"},
		{"tampered NTProofStr", authSpec{tamperProof: true}, "NTProofStr"},
		{"present but wrong MIC", authSpec{version: true, mic: true, badMIC: true, sessionKey: random}, "MIC mismatch"},
		{"unknown user", authSpec{user: "mallory"}, "unknown account"},
		{"NTLMv1 response", authSpec{ntLen: 24}, "NTLMv2"},
		{"anonymous", authSpec{ntLen: -1}, "NTLMv2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, neg := newTestAcceptor(t, users)
			s := tc.spec
			if s.user == "" {
				s.user = "administrator" // case-insensitive, as on Windows
			}
			if s.password == "" {
				s.password = "Adm1n-Passw0rd"
			}
			s.domain = "WORKGROUP"
			anon := s.ntLen < 0
			if anon {
				s.ntLen = 0
			}
			msg := buildAuthenticate(t, n, neg, s)
			if anon {
				binary.LittleEndian.PutUint16(msg[20:], 0)
			}
			key, err := n.finish(msg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("finish = %q, %v; want error containing %q", key, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "Adm1n") {
					t.Fatal("password in error")
				}
				return
			}
			if err != nil {
				t.Fatalf("finish: %v", err)
			}
			if key != "Administrator" {
				t.Fatalf("account = %q", key)
			}
			if n.sawMIC != s.mic || n.sawVersion != s.version {
				t.Errorf("sawMIC=%v sawVersion=%v, want %v %v", n.sawMIC, n.sawVersion, s.mic, s.version)
			}
			if s.sessionKey != nil && !bytes.Equal(n.sessionKey, s.sessionKey) {
				t.Errorf("exported session key = %x, want the client's %x", n.sessionKey, s.sessionKey)
			}
			checkSealRoundTrip(t, n)
		})
	}
}

// checkSealRoundTrip plays the client's side of sealing with keys derived
// independently (MS-NLMP 3.4.5) and checks the acceptor decrypts and
// verifies it, and that a flipped bit is refused.
func checkSealRoundTrip(t *testing.T, n *ntlmAcceptor) {
	t.Helper()
	k := n.sessionKey
	sign := md5Sum(k, []byte("session key to client-to-server signing key magic constant\x00"))
	seal, _ := rc4.NewCipher(md5Sum(k, []byte("session key to client-to-server sealing key magic constant\x00")))
	for seq, tamper := range []bool{false, true} {
		hdr, body, trl := []byte("header"), []byte("a sealed request stub..."), []byte("trailer!")
		sum := hmacMD5(sign, binary.LittleEndian.AppendUint32(nil, uint32(seq)), hdr, body, trl)[:8]
		enc := make([]byte, len(body))
		seal.XORKeyStream(enc, body)
		if n.flags.IsSet(ntlm.NegotiateKeyExchange) {
			seal.XORKeyStream(sum, sum)
		}
		sig := binary.LittleEndian.AppendUint32(nil, 1)
		sig = append(sig, sum...)
		sig = binary.LittleEndian.AppendUint32(sig, uint32(seq))
		if tamper {
			enc[2] ^= 0x80
		}
		err := n.verifyIn([][]byte{hdr, enc, trl}, enc, sig)
		if tamper && err == nil {
			t.Fatal("tampered sealed message accepted")
		}
		if !tamper && (err != nil || !bytes.Equal(enc, body)) {
			t.Fatalf("sealed message: %v, decrypted %q", err, enc)
		}
	}
}

// TestNTLMAcceptorMalformed feeds cut and corrupted AUTHENTICATE
// messages: each must fail with an error, never panic.
func TestNTLMAcceptorMalformed(t *testing.T) {
	users := map[string]User{"Administrator": {Password: "pw"}}
	n, neg := newTestAcceptor(t, users)
	good := buildAuthenticate(t, n, neg, authSpec{user: "Administrator", domain: "W", password: "pw", mic: true, version: true})
	for i := 0; i < len(good); i++ {
		if _, err := n.finish(good[:i]); err == nil {
			t.Fatalf("message cut at %d accepted", i)
		}
	}
	if _, err := n.finish(good); err != nil {
		t.Fatalf("uncut message refused: %v", err)
	}
	n, neg = newTestAcceptor(t, users)
	good = buildAuthenticate(t, n, neg, authSpec{user: "Administrator", domain: "W", password: "pw", mic: true, version: true})
	bad := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(bad[24:], 0xfffffff0) // NT response offset
	if _, err := n.finish(bad); err == nil {
		t.Fatal("out-of-bounds NT response accepted")
	}
	fresh := &ntlmAcceptor{users: users}
	if _, err := fresh.finish(good); err == nil {
		t.Fatal("AUTHENTICATE before CHALLENGE accepted")
	}
	if _, err := fresh.accept([]byte("NTLMSSP\x00\x03\x00\x00\x00")); err == nil {
		t.Fatal("short or wrong-type NEGOTIATE accepted")
	}
}
