package adauth

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/lanconnect/lanconnect/discovery"
)

func TestFormatGUID(t *testing.T) {
	for _, tc := range []struct{ wire, want string }{
		// Byte order on the wire: Data1 (LE), Data2 (LE), Data3 (LE), Data4.
		{"00112233445566778899aabbccddeeff", "33221100-5544-7766-8899-aabbccddeeff"},
		// The well-known GUID of the Computers container in every domain
		// (wellKnownObjects: AA312825768811D1ADED00C04FD8D5CD), as stored.
		{"252831aa8876d111aded00c04fd8d5cd", "aa312825-7688-11d1-aded-00c04fd8d5cd"},
	} {
		b, _ := hex.DecodeString(tc.wire)
		if got := FormatGUID(b); got != tc.want {
			t.Errorf("FormatGUID(%s) = %s, want %s", tc.wire, got, tc.want)
		}
	}
	if got := FormatGUID(make([]byte, 15)); got != "" {
		t.Errorf("FormatGUID(15 bytes) = %q, want empty", got)
	}
}

func TestFiletimeToTime(t *testing.T) {
	for _, tc := range []struct {
		ft   int64
		want time.Time
	}{
		{0, time.Time{}},
		{0x7FFFFFFFFFFFFFFF, time.Time{}},
		{-5, time.Time{}},
		{116444736000000000, time.Unix(0, 0).UTC()},
		// 2024-01-15 09:30:00.1234567 UTC
		{133497846001234567, time.Date(2024, 1, 15, 9, 30, 0, 123456700, time.UTC)},
		// Before the Unix epoch: 1601-01-01 plus one second.
		{10_000_000, time.Date(1601, 1, 1, 0, 0, 1, 0, time.UTC)},
	} {
		got := FiletimeToTime(tc.ft)
		if !got.Equal(tc.want) {
			t.Errorf("FiletimeToTime(%d) = %v, want %v", tc.ft, got, tc.want)
		}
	}
}

func TestEntryToHost(t *testing.T) {
	guid, _ := hex.DecodeString("00112233445566778899aabbccddeeff")
	e := ldap.NewEntry("CN=WS-0001,OU=Sales,DC=corp,DC=example", nil)
	add := func(name string, vals ...string) {
		a := ldap.NewEntryAttribute(name, vals)
		e.Attributes = append(e.Attributes, a)
	}
	add("name", "ws-0001")
	add("sAMAccountName", "WS-0001$")
	add("dNSHostName", "ws-0001.corp.example")
	add("operatingSystem", "Windows 11 Pro")
	add("operatingSystemVersion", "10.0 (22631)")
	add("lastLogonTimestamp", "133497846001234567")
	add("whenCreated", "20230102030405.0Z")
	add("userAccountControl", "4098") // WORKSTATION_TRUST_ACCOUNT | ACCOUNTDISABLE
	e.Attributes = append(e.Attributes, &ldap.EntryAttribute{Name: "objectGUID", Values: []string{string(guid)}, ByteValues: [][]byte{guid}})

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h, err := entryToHost(e, "CORP", now)
	if err != nil {
		t.Fatalf("entryToHost: %v", err)
	}
	if h.Name != "WS-0001" || h.DNSName != "ws-0001.corp.example" || h.Domain != "CORP" {
		t.Errorf("names: %+v", h)
	}
	if h.OS != "Windows 11 Pro" || h.OSVersion != "10.0 (22631)" {
		t.Errorf("OS: %q %q", h.OS, h.OSVersion)
	}
	if h.GUID != "33221100-5544-7766-8899-aabbccddeeff" {
		t.Errorf("GUID %q", h.GUID)
	}
	if h.DN != e.DN {
		t.Errorf("DN %q", h.DN)
	}
	if h.Enabled == nil || *h.Enabled {
		t.Errorf("Enabled = %v, want false", h.Enabled)
	}
	if !h.LastLogon.Equal(time.Date(2024, 1, 15, 9, 30, 0, 123456700, time.UTC)) {
		t.Errorf("LastLogon %v", h.LastLogon)
	}
	if !h.Created.Equal(time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("Created %v", h.Created)
	}
	if len(h.Sources) != 1 || h.Sources[0] != discovery.SourceLDAP {
		t.Errorf("Sources %v", h.Sources)
	}
	if len(h.Roles) != 0 {
		t.Errorf("Roles %v, want none", h.Roles)
	}
	if !h.FirstSeen.Equal(now) || !h.LastSeen.Equal(now) {
		t.Errorf("seen %v %v", h.FirstSeen, h.LastSeen)
	}

	// A DC (SERVER_TRUST_ACCOUNT), enabled, with malformed attributes that
	// are skipped rather than failing the entry.
	dc := ldap.NewEntry("CN=DC1,OU=Domain Controllers,DC=corp,DC=example", map[string][]string{
		"name":               {"DC1"},
		"userAccountControl": {"532480"},
		"lastLogonTimestamp": {"not-a-number"},
	})
	h, err = entryToHost(dc, "CORP", now)
	if err == nil {
		t.Error("malformed lastLogonTimestamp gave no error")
	}
	if h.Name != "DC1" || h.Enabled == nil || !*h.Enabled || !h.LastLogon.IsZero() {
		t.Errorf("DC host: %+v", h)
	}
	if len(h.Roles) != 1 || h.Roles[0] != discovery.RoleDomainController {
		t.Errorf("DC roles %v", h.Roles)
	}
}

func TestDNSDomainOf(t *testing.T) {
	if got := dnsDomainOf("DC=corp,DC=example,DC=com"); got != "corp.example.com" {
		t.Errorf("dnsDomainOf = %q", got)
	}
}

// lapsFormat picks the preferred readable format and clears every value.
func TestLAPSFormat(t *testing.T) {
	e := ldap.NewEntry("CN=PC1,DC=corp", map[string][]string{
		"sAMAccountName":                {"PC1$"},
		"MS-MCS-ADMPWD":                 {"legacy-secret"},
		"msLAPS-Password":               {`{"p":"win-secret"}`},
		"msLAPS-PasswordExpirationTime": {"1"},
	})
	if got := lapsFormat(e); got != "windows" {
		t.Fatalf("format %q", got)
	}
	for _, a := range e.Attributes {
		if strings.Contains(fmt.Sprint(a.Values, a.ByteValues), "secret") {
			t.Fatalf("%s still holds its value", a.Name)
		}
	}
	if got := lapsFormat(ldap.NewEntry("CN=PC2", map[string][]string{"ms-Mcs-AdmPwdExpirationTime": {"1"}})); got != "" {
		t.Fatalf("expiration only: %q", got)
	}
	if got := (&Directory{}).attributes(); slices.Contains(got, "ms-Mcs-AdmPwd") {
		t.Fatal("LAPS attributes asked for without Directory.LAPS")
	}
}
