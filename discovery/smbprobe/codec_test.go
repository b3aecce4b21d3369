package smbprobe

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/smbconn"
)

func vectors(t testing.TB, glob string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test vectors %s: %v", glob, err)
	}
	m := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[f] = b
	}
	return m
}

// TestSambaVectors parses responses captured from the lab's Samba targets
// and DC (go test -run TestLabProbe -update refreshes them).
func TestSambaVectors(t *testing.T) {
	for f, b := range vectors(t, "samba_negotiate_*.bin") {
		n, err := ParseNegotiateResponse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if n.Dialect != 0x0311 {
			t.Errorf("%s: dialect %s", f, smbconn.Dialect(n.Dialect))
		}
	}
	for f, b := range vectors(t, "samba_session_setup_*.bin") {
		buf, err := parseSessionSetupResponse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		info := Info{Dialect: 0x0311}
		if err := challengeInto(&info, buf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if info.Server.NetBIOSName == "" || info.Server.OSVersion == "" {
			t.Errorf("%s: challenge without name or version: %+v", f, info.Server)
		}
	}
}

// TestHostile feeds broken and hostile responses: every one gives an error
// matching ErrMalformed or a *StatusError, and none panics.
func TestHostile(t *testing.T) {
	var neg, setup []byte
	for _, b := range vectors(t, "samba_negotiate_1.bin") {
		neg = b
	}
	for _, b := range vectors(t, "samba_session_setup_1.bin") {
		setup = b
	}
	mut := func(b []byte, f func([]byte)) []byte { c := append([]byte(nil), b...); f(c); return c }
	cases := map[string]struct {
		msg   []byte
		setup bool
	}{
		"empty":             {nil, false},
		"short header":      {neg[:40], false},
		"smb1":              {mut(neg, func(b []byte) { b[0] = 0xff }), false},
		"not smb":           {mut(neg, func(b []byte) { copy(b, "HTTP") }), false},
		"request not resp":  {mut(neg, func(b []byte) { b[16] = 0 }), false},
		"wrong command":     {mut(neg, func(b []byte) { b[12] = 5 }), false},
		"bad struct size":   {mut(neg, func(b []byte) { b[64] = 3 }), false},
		"body truncated":    {neg[:headerSize+10], false},
		"wildcard dialect":  {mut(neg, func(b []byte) { binary.LittleEndian.PutUint16(b[68:], 0x02ff) }), false},
		"setup short":       {setup[:headerSize+4], true},
		"setup buf outside": {mut(setup, func(b []byte) { binary.LittleEndian.PutUint16(b[70:], 0xffff) }), true},
		"setup buf in hdr":  {mut(setup, func(b []byte) { binary.LittleEndian.PutUint16(b[68:], 8) }), true},
		"setup struct size": {mut(setup, func(b []byte) { b[64] = 1 }), true},
	}
	for name, tc := range cases {
		var err error
		if tc.setup {
			_, err = parseSessionSetupResponse(tc.msg)
		} else {
			_, err = ParseNegotiateResponse(tc.msg)
		}
		var se *StatusError
		if !errors.Is(err, ErrMalformed) && !errors.As(err, &se) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	// A logon refusal is a status error, not a malformed one.
	refused := mut(setup, func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 0xC000006D) })
	_, err := parseSessionSetupResponse(refused)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 0xC000006D || !strings.Contains(err.Error(), "C000006D") {
		t.Errorf("status: %v", err)
	}
	// A challenge buffer with garbage instead of NTLM.
	info := Info{}
	if err := challengeInto(&info, []byte("no ntlm here")); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage challenge: %v", err)
	}
}

func TestRequests(t *testing.T) {
	var g [16]byte
	var s [32]byte
	b := negotiateRequest(g, s)
	if string(b[:4]) != "\xfeSMB" || binary.LittleEndian.Uint16(b[64:]) != 36 {
		t.Fatal("bad negotiate header or body")
	}
	if n := binary.LittleEndian.Uint16(b[66:]); int(n) != len(offeredDialects) {
		t.Fatalf("dialect count %d", n)
	}
	ctxOff := binary.LittleEndian.Uint32(b[64+28:])
	if ctxOff%8 != 0 || int(ctxOff) >= len(b) || binary.LittleEndian.Uint16(b[ctxOff:]) != negCtxPreauthIntegrity {
		t.Fatalf("negotiate context at %d", ctxOff)
	}
	tok := spnegoInit(ntlmNegotiate())
	ss := sessionSetupRequest(tok)
	off := binary.LittleEndian.Uint16(ss[64+12:])
	n := binary.LittleEndian.Uint16(ss[64+14:])
	if string(ss[off:off+n]) != string(tok) {
		t.Fatal("security buffer misplaced")
	}
	if !strings.Contains(string(tok), "NTLMSSP\x00\x01\x00\x00\x00") {
		t.Fatal("no NTLM NEGOTIATE in the token")
	}
}

func TestProductName(t *testing.T) {
	for _, tc := range []struct {
		maj, min uint8
		build    uint16
		want     string
	}{
		{10, 0, 22631, "Windows 11 23H2"},
		{10, 0, 20348, "Windows Server 2022"},
		{6, 1, 7601, "Windows 7 SP1 / Server 2008 R2 SP1"},
		{6, 1, 0, ""},
		{10, 0, 12345, ""},
	} {
		if got := ProductName(tc.maj, tc.min, tc.build); got != tc.want {
			t.Errorf("%d.%d.%d = %q, want %q", tc.maj, tc.min, tc.build, got, tc.want)
		}
	}
}

func FuzzResponses(f *testing.F) {
	for _, b := range vectors(f, "samba_*.bin") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseNegotiateResponse(b)
		if buf, err := parseSessionSetupResponse(b); err == nil {
			var info Info
			_ = challengeInto(&info, buf)
		}
	})
}

func TestHostOfKeepsOnlyQualifiedDNSNames(t *testing.T) {
	info := Info{Dialect: 0x0311}
	info.Server.NetBIOSName, info.Server.DNSName = "HERON", "heron"
	if h := HostOf(info, time.Now()); h.DNSName != "" || h.Name != "HERON" {
		t.Fatalf("bare host name kept as DNS name: %+v", h)
	}
	info.Server.DNSName = "heron.corp.example"
	if h := HostOf(info, time.Now()); h.DNSName != "heron.corp.example" {
		t.Fatalf("qualified DNS name dropped: %+v", h)
	}
}
