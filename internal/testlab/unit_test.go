package testlab

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestAccountRedacts(t *testing.T) {
	a := Account{User: "admin", Password: "s3cret-Pa55"}
	for _, s := range []string{a.String(), fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a)} {
		if strings.Contains(s, a.Password) {
			t.Fatalf("password shown: %s", s)
		}
		if !strings.Contains(s, "admin") {
			t.Fatalf("user missing: %s", s)
		}
	}
	if (Account{User: "u"}).String() != "u" {
		t.Fatal("account without password")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Targets: []TargetSpec{{Variant: "bogus"}}},
		{Targets: []TargetSpec{{NoSMB: true, NoNmbd: true}}},
		{Targets: []TargetSpec{{Name: "THIS-NAME-IS-TOO-LONG"}}},
		{Targets: []TargetSpec{{Name: "A"}, {Name: "a"}}},
		{Targets: []TargetSpec{{Name: "bad name"}}},
		{Workgroup: "WG WG"},
		{DC: &DCSpec{Computers: -1}},
		{DC: &DCSpec{Realm: "norealm"}},
		{Targets: []TargetSpec{{DomainMember: true}}}, // no DC
		{Targets: []TargetSpec{{DomainMember: true, Variant: GuestOnly}}, DC: &DCSpec{}},
		{Targets: []TargetSpec{{DomainMember: true, Bare: true}}, DC: &DCSpec{}},
		{Targets: []TargetSpec{{Name: "lcmember0"}, {DomainMember: true}}, DC: &DCSpec{}},
		{Targets: []TargetSpec{{ResidentRPC: true, NoSMB: true}}},
		{Targets: []TargetSpec{{ResidentRPC: true, Bare: true}}},
		{Targets: []TargetSpec{{ResidentRPC: true, DomainMember: true}}, DC: &DCSpec{}},
	} {
		err := o.validate()
		if !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: want ErrBadOptions, got %v", o, err)
		}
	}
	ok := Options{Targets: []TargetSpec{{}, {Name: "PC-1", Variant: GuestOnly}, {NoSMB: true}, {Bare: true}, {NoSMB: true, NoNmbd: true, Bare: true}, {DomainMember: true, Variant: NTLMDisabled}, {ResidentRPC: true, Variant: SigningMandatory}}, Workgroup: "WG", DC: &DCSpec{Realm: "AD.EXAMPLE.TEST", Computers: 5, NoNTLM: true}}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	var zero Options
	if zero.validate() != nil {
		t.Fatal("zero Options invalid")
	}
}

func TestParsePrefixesAndChoose(t *testing.T) {
	text := `default via 192.0.2.1 dev eth0
10.0.0.0/9 dev tun0 scope link
local 10.200.1.5 dev x table local proto kernel
2: eth0    inet 10.201.7.9/16 brd 10.201.255.255 scope global eth0
nameserver 10.255.255.53`
	ps := parsePrefixes(text)
	want := []string{"10.0.0.0/9", "10.200.1.5/32", "10.201.0.0/16", "10.255.255.53/32"}
	for _, w := range want {
		found := false
		for _, p := range ps {
			if p.String() == w {
				found = true
			}
		}
		if !found {
			t.Errorf("parsePrefixes misses %s: %v", w, ps)
		}
	}
	for _, p := range ps {
		if p.Bits() == 0 {
			t.Errorf("default route kept: %v", p)
		}
	}
	for range 200 {
		p, err := chooseSubnet(ps)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range ps {
			if u.Overlaps(p) {
				t.Fatalf("chose %v overlapping %v", p, u)
			}
		}
		if p.Bits() != 24 || p.Addr().As4()[0] != 10 {
			t.Fatalf("chose %v", p)
		}
	}
	if _, err := chooseSubnet([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}); !errors.Is(err, ErrNoFreeSubnet) {
		t.Fatalf("all used: %v", err)
	}
}

func TestAddressFix(t *testing.T) {
	// An A record for 10.107.91.2 as provisioning writes it, and an NS
	// record that must stay as it is.
	a, _ := base64.StdEncoding.DecodeString("BAABAAXwAAABAAAAAAADhAAAAAAAAAAACmtbAg==")
	other, _ := base64.StdEncoding.DecodeString("HwACAAWCAAABAAAAAAADhAAAAAAAAAAAHQQFbGNkYzEFbGNsYWIKbGFuY29ubmVjdAR0ZXN0AA==")
	from := netip.MustParseAddr("10.107.91.2")
	if got, ok := aRecordAddr(a); !ok || got != from {
		t.Fatalf("aRecordAddr: %v %v", got, ok)
	}
	if _, ok := aRecordAddr(other); ok {
		t.Fatal("NS record taken for an A record")
	}
	var b strings.Builder
	to := netip.MustParseAddr("10.1.2.3")
	writeAddressFix(&b, []dnsObject{{DN: "DC=x", Values: [][]byte{a, other}}}, from, to)
	lines := strings.Split(b.String(), "\n")
	if lines[0] != "dn: DC=x" || lines[1] != "changetype: modify" || lines[2] != "replace: dnsRecord" || lines[5] != "-" {
		t.Fatalf("LDIF:\n%s", b.String())
	}
	v, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[3], "dnsRecord:: "))
	if got, ok := aRecordAddr(v); !ok || got != to || string(v[:24]) != string(a[:24]) {
		t.Fatalf("patched record %x", v)
	}
	if lines[4] != "dnsRecord:: "+base64.StdEncoding.EncodeToString(other) {
		t.Fatalf("other record changed: %s", lines[4])
	}
}

func TestNBSTATQuery(t *testing.T) {
	q := nbstatQuery(0x1234)
	if len(q) != 50 || q[0] != 0x12 || q[1] != 0x34 || q[5] != 1 || q[12] != 32 {
		t.Fatalf("% x", q)
	}
	// "*" followed by 15 NULs, first-level encoded: "CK" then "AA"s.
	if string(q[13:15]) != "CK" || strings.Trim(string(q[15:45]), "A") != "" {
		t.Fatalf("name %q", q[13:45])
	}
	if q[46] != 0 || q[47] != 0x21 || q[49] != 1 {
		t.Fatalf("type/class % x", q[45:])
	}
}

func TestRxQueued(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0A3CF20A:01BD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0A3CF20A:01BD 013CF20A:8E7C 01 00000000:0000009C 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0A3CF20A:01BD 013CF20A:8E7D 01 00000000:00000004 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0A3CF20A:0089 013CF20A:8E7E 01 00000000:00000010 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: 0A3CF20A:01BD 013CF20A:8E7F 06 00000000:00000020 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
`
	if got := rxQueued(table, 445); got != 0x9c+4 {
		t.Fatalf("rxQueued = %d, want %d", got, 0x9c+4)
	}
	if got := rxQueued(table, 139); got != 0 {
		t.Fatalf("port 139: %d", got)
	}
}
