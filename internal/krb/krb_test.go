package krb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/errorcode"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/nametype"
	"github.com/oiweiwei/gokrb5.fork/v9/messages"
	"github.com/oiweiwei/gokrb5.fork/v9/types"
)

// fakeKDC answers every request on a loopback TCP port with one
// KRB-ERROR, and counts the requests by message type.
type fakeKDC struct {
	ln    net.Listener
	code  int32
	skew  time.Duration
	edata []byte

	mu   sync.Mutex
	reqs map[byte]int
	// hold, when set, runs after a request is counted and before it is
	// answered.
	hold func()
}

func newFakeKDC(t testing.TB, code int32, skew time.Duration, edata []byte) *fakeKDC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKDC{ln: ln, code: code, skew: skew, edata: edata, reqs: map[byte]int{}}
	t.Cleanup(func() { ln.Close() })
	go k.serve()
	return k
}

func (k *fakeKDC) serve() {
	for {
		c, err := k.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			var hdr [4]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(hdr[:])
			if n > 1<<16 {
				return
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(c, body); err != nil || n == 0 {
				return
			}
			k.mu.Lock()
			k.reqs[body[0]]++
			hold := k.hold
			k.mu.Unlock()
			if hold != nil {
				hold()
			}
			ke := messages.NewKRBError(types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "krbtgt/EXAMPLE.TEST"), "EXAMPLE.TEST", k.code, "fake")
			now := time.Now().Add(k.skew).UTC()
			ke.STime = now.Truncate(time.Second)
			ke.Susec = now.Nanosecond() / 1000
			ke.EData = k.edata
			b, err := ke.Marshal()
			if err != nil {
				return
			}
			out := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
			_, _ = c.Write(append(out, b...))
		}()
	}
}

func (k *fakeKDC) count(tag byte) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reqs[tag]
}

// extError is the e-data a Windows or Samba KDC sends with a revoked
// client: METHOD-DATA with PA-PW-SALT (3) carrying KERB-EXT-ERROR.
func extError(t *testing.T, status uint32) []byte {
	t.Helper()
	v := binary.LittleEndian.AppendUint32(nil, status)
	v = append(v, 0, 0, 0, 0, 1, 0, 0, 0)
	b, err := asn1.Marshal(types.PADataSequence{{PADataType: 3, PADataValue: v}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFakeKDCDiagnoses(t *testing.T) {
	cred := Credential{User: "tech", Realm: "example.test", Password: "not-the-password-Zq9"}
	cases := []struct {
		name  string
		code  int32
		skew  time.Duration
		edata []byte
		want  error
	}{
		{"skew", errorcode.KRB_AP_ERR_SKEW, 10 * time.Minute, nil, ErrClockSkew},
		{"skew behind", errorcode.KRB_AP_ERR_SKEW, -7 * time.Minute, nil, ErrClockSkew},
		{"unknown user", errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN, 0, nil, ErrPrincipalUnknown},
		{"preauth failed", errorcode.KDC_ERR_PREAUTH_FAILED, 0, nil, ErrWrongPassword},
		{"no etype", errorcode.KDC_ERR_ETYPE_NOSUPP, 0, nil, ErrNoCommonEtype},
		{"locked", errorcode.KDC_ERR_CLIENT_REVOKED, 0, extError(t, statusAccountLockedOut), ErrAccountLocked},
		{"disabled", errorcode.KDC_ERR_CLIENT_REVOKED, 0, extError(t, statusAccountDisabled), ErrAccountDisabled},
		{"expired", errorcode.KDC_ERR_CLIENT_REVOKED, 0, extError(t, statusAccountExpired), ErrAccountExpired},
		{"revoked without reason", errorcode.KDC_ERR_CLIENT_REVOKED, 0, nil, ErrAccount},
		{"password expired", errorcode.KDC_ERR_KEY_EXPIRED, 0, nil, ErrAccountExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKDC(t, tc.code, tc.skew, tc.edata)
			c := NewCache(Config{KDC: k.ln.Addr().String(), Timeout: 3 * time.Second})
			defer c.Close()
			err := c.TGT(context.Background(), cred)
			var ke *Error
			if !errors.Is(err, tc.want) || !errors.As(err, &ke) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrClockSkew, ErrPrincipalUnknown, ErrWrongPassword, ErrNoCommonEtype, ErrAccountLocked, ErrAccountDisabled, ErrKDCUnreachable} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("%v also matches %v", err, other)
				}
			}
			if ke.Code != tc.code || ke.KDC != k.ln.Addr().String() {
				t.Errorf("code %d kdc %q, want %d %s", ke.Code, ke.KDC, tc.code, k.ln.Addr())
			}
			if tc.want == ErrClockSkew {
				if d := ke.Skew - tc.skew; d < -3*time.Second || d > 3*time.Second {
					t.Errorf("skew %v, want about %v", ke.Skew, tc.skew)
				}
				if !strings.Contains(err.Error(), fmt.Sprint(abs(ke.Skew))+" ") {
					t.Errorf("message does not say by how much: %v", err)
				}
			}
			if strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, ke), cred.Password) {
				t.Fatal("the error shows the password")
			}
			st := c.Stats()
			if st.ASExchanges != 1 || st.ASReqs != 1 || k.count(tagASReq) != 1 {
				t.Errorf("stats %+v, KDC saw %d AS-REQs; want 1", st, k.count(tagASReq))
			}
			// A credential the KDC judged is not sent again; a skew is
			// worth a retry once the clock is fixed.
			err2 := c.TGT(context.Background(), cred)
			again := k.count(tagASReq)
			if tc.want == ErrClockSkew {
				if again != 2 || !errors.Is(err2, ErrClockSkew) {
					t.Errorf("after a skew: %d AS-REQs, %v; want a new try", again, err2)
				}
			} else if again != 1 || !errors.Is(err2, tc.want) {
				t.Errorf("second TGT: %d AS-REQs, %v; want the remembered diagnosis and no new AS-REQ", again, err2)
			}
		})
	}
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func TestKDCUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	c := NewCache(Config{KDC: addr, Timeout: 2 * time.Second})
	defer c.Close()
	cred := Credential{User: "tech", Realm: "EXAMPLE.TEST", Password: "x-Secret-1"}
	for range 2 {
		err = c.TGT(context.Background(), cred)
		var ke *Error
		if !errors.Is(err, ErrKDCUnreachable) || !errors.As(err, &ke) || ke.KDC != addr || ke.Code != 0 {
			t.Fatalf("got %v, want ErrKDCUnreachable from %s", err, addr)
		}
	}
	if st := c.Stats(); st.ASExchanges != 2 || st.Dials < 2 {
		t.Errorf("stats %+v: an unreachable KDC is retried at the next use", st)
	}
	// A KDC that accepts but never answers: Config.Timeout, not the
	// library's own 5 s, ends the wait.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	sc := NewCache(Config{KDC: silent.Addr().String(), Timeout: 300 * time.Millisecond})
	defer sc.Close()
	t0 := time.Now()
	err = sc.TGT(context.Background(), cred)
	if took := time.Since(t0); !errors.Is(err, ErrKDCUnreachable) || took > 4*time.Second {
		t.Errorf("silent KDC: %v after %v, want ErrKDCUnreachable after about 300ms", err, took)
	}
	// A context that ends first stops the exchange at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.TGT(ctx, cred); !errors.Is(err, ErrKDCUnreachable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestSPN(t *testing.T) {
	for _, tc := range []struct {
		class, host, want string
		err               error
	}{
		{CIFS, "WS01.Corp.Example.", "cifs/ws01.corp.example", nil},
		{Host, "srv.corp.example", "host/srv.corp.example", nil},
		{RPCSS, "srv.corp.example", "RPCSS/srv.corp.example", nil},
		{LDAP, "dc1.corp.example", "ldap/dc1.corp.example", nil},
		{CIFS, "10.0.0.5", "", ErrNeedsDNSName},
		{CIFS, "fe80::1", "", ErrNeedsDNSName},
		{CIFS, "WS01", "", ErrNeedsDNSName},
		{CIFS, "bad_name.corp", "", ErrBadInput},
		{"http", "a.b", "", ErrBadInput},
	} {
		got, err := SPN(tc.class, tc.host)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("SPN(%q, %q) = %q, %v; want %q, %v", tc.class, tc.host, got, err, tc.want, tc.err)
		}
	}
}

func TestParseUserAndCredential(t *testing.T) {
	for _, tc := range []struct{ in, user, realm string }{
		{`LCLAB\admin`, "admin", "LCLAB"},
		{"admin@lclab.example.test", "admin", "LCLAB.EXAMPLE.TEST"},
	} {
		u, r, err := ParseUser(tc.in)
		if err != nil || u != tc.user || r != tc.realm {
			t.Errorf("ParseUser(%q) = %q %q %v", tc.in, u, r, err)
		}
	}
	for _, bad := range []string{"admin", `.\admin`, "@REALM", `DOM\`} {
		if _, _, err := ParseUser(bad); !errors.Is(err, ErrBadInput) {
			t.Errorf("ParseUser(%q): %v, want ErrBadInput", bad, err)
		}
	}
	c := NewCache(Config{KDC: "127.0.0.1:1"})
	defer c.Close()
	for _, bad := range []Credential{
		{User: "a", Realm: "R.TEST"},
		{User: "a", Realm: "R.TEST", Password: "p", NTHash: make([]byte, 16)},
		{User: "a", Realm: "R.TEST", NTHash: make([]byte, 15)},
		{User: "a", Realm: "R.TEST", AESKey: make([]byte, 20)},
		{Realm: "R.TEST", Password: "p"},
	} {
		if err := c.TGT(context.Background(), bad); !errors.Is(err, ErrBadInput) {
			t.Errorf("TGT(%v): %v, want ErrBadInput", bad, err)
		}
	}
	if st := c.Stats(); st.Dials != 0 {
		t.Errorf("bad credentials reached the network: %+v", st)
	}
	cred := Credential{User: "a", Realm: "r.test", Password: "Secret-Pw-42", NTHash: nil}
	for _, s := range []string{cred.String(), fmt.Sprintf("%v %+v %#v %s", cred, cred, cred, cred)} {
		if strings.Contains(s, "Secret-Pw-42") || !strings.Contains(s, "a@R.TEST") {
			t.Errorf("credential printed as %q", s)
		}
	}
}

func TestLocateOrder(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "krb5.conf")
	if err := os.WriteFile(conf, []byte("[libdefaults]\n default_realm = EXAMPLE.TEST\n[realms]\n EXAMPLE.TEST = {\n  kdc = 127.0.0.7\n  kdc = 127.0.0.8:1088\n }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A resolver whose DNS server refuses at once: no SRV records.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", dead)
	}}
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  Config
		src  KDCSource
		want []string
	}{
		{Config{KDC: "127.0.0.9", KRB5Conf: conf, DC: "127.0.0.10", Resolver: res}, FromExplicit, []string{"127.0.0.9:88"}},
		{Config{KRB5Conf: conf, DC: "127.0.0.10", Resolver: res}, FromKRB5Conf, []string{"127.0.0.7:88", "127.0.0.8:1088"}},
		{Config{DC: "127.0.0.10", Resolver: res}, FromDC, []string{"127.0.0.10:88"}},
	} {
		c := NewCache(tc.cfg)
		k, err := c.Locate(ctx, "example.test")
		c.Close()
		if err != nil || k.Source != tc.src || strings.Join(k.Addrs, ",") != strings.Join(tc.want, ",") || k.Realm != "EXAMPLE.TEST" {
			t.Errorf("Locate with %+v: %+v, %v; want %s %v", tc.cfg, k, err, tc.src, tc.want)
		}
	}
	c := NewCache(Config{Resolver: res})
	defer c.Close()
	if _, err := c.Locate(ctx, "EXAMPLE.TEST"); !errors.Is(err, ErrNoKDC) || !strings.Contains(err.Error(), "dns-srv") {
		t.Errorf("no source: %v, want ErrNoKDC saying what was tried", err)
	}
}
