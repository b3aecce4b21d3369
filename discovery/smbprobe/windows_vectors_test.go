package smbprobe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// guidString formats an SMB2 server GUID (a GUID in its little-endian wire
// form) the way Wireshark shows it.
func guidString(g [16]byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[0:]),
		binary.LittleEndian.Uint16(g[4:]), binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

func windowsVector(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "windows", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWindowsVectors parses SMB2 NEGOTIATE and SESSION_SETUP responses
// captured from real Windows (testdata/windows/README.md names each
// source) and maps them to a discovery.Host. The expected values were read
// from Wireshark's dissection of the same frames.
func TestWindowsVectors(t *testing.T) {
	for _, tc := range []struct {
		name            string
		dialect         uint16
		signingRequired bool
		guid            string
		caps            uint32
		// Host
		host, domain, dnsName, os, osVersion, dialectStr string
	}{
		{
			name: "server2016", dialect: 0x0311, signingRequired: true,
			guid: "b18e3dcc-73df-4bd5-994a-225555ffd5de", caps: 0x2f,
			host: "01566S-WIN16-IR", domain: "3B", dnsName: "01566s-win16-ir.threebeesco.com",
			os: "Windows 10 1607 / Server 2016", osVersion: "10.0.14393", dialectStr: "3.1.1",
		},
		{
			// The client offered dialects up to 3.0.2 only.
			name: "server2022", dialect: 0x0300, signingRequired: true,
			guid: "d032b464-6af9-4e94-ac4a-a35857e0d4d7", caps: 0x47,
			host: "DC1", domain: "DOM189", dnsName: "dc1.dom189.local",
			os: "Windows Server 2022", osVersion: "10.0.20348", dialectStr: "3.0",
		},
		{
			// The client offered dialects up to 3.0.2 only.
			name: "server2019", dialect: 0x0300, signingRequired: true,
			guid: "8019f7db-d016-4806-8130-eae4f7ccfad1", caps: 0x47,
			host: "BAS-AD-01", domain: "LAB", dnsName: "bas-ad-01.lab.local",
			os: "Windows 10 1809 / Server 2019", osVersion: "10.0.17763", dialectStr: "3.0",
		},
		{
			name: "server2016_dc", dialect: 0x0311, signingRequired: true,
			guid: "9cbe294b-dd63-47b6-8d1f-3dce81383e69", caps: 0x27,
			host: "AD", domain: "FOO", dnsName: "AD.foo.test",
			os: "Windows 10 1607 / Server 2016", osVersion: "10.0.14393", dialectStr: "3.1.1",
		},
		{
			// An answer to an SMB1 NEGOTIATE that offered "SMB 2.002".
			name: "server2008", dialect: 0x0202, signingRequired: false,
			guid: "e6fa9a19-c50f-49c1-b76b-e5fbd1c6f112", caps: 0x1,
			host: "SERVER002", domain: "CONTOSO", dnsName: "SERVER002.contoso.com",
			os: "Windows Vista SP1 / Server 2008", osVersion: "6.0.6001", dialectStr: "2.0.2",
		},
		{
			name: "win10_2004", dialect: 0x0311, signingRequired: false,
			guid: "584a91ee-9734-4a4a-b331-d7994680efe6", caps: 0x2f,
			host: "WS02", domain: "CONTOSO", dnsName: "ws02.contoso.local",
			os: "Windows 10 2004", osVersion: "10.0.19041", dialectStr: "3.1.1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			neg, err := ParseNegotiateResponse(windowsVector(t, tc.name+"_negotiate.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if neg.Dialect != tc.dialect || neg.SigningRequired != tc.signingRequired ||
				guidString(neg.ServerGUID) != tc.guid || neg.Capabilities != tc.caps {
				t.Errorf("negotiated dialect 0x%04x signing required %v guid %s caps 0x%x; want 0x%04x %v %s 0x%x",
					neg.Dialect, neg.SigningRequired, guidString(neg.ServerGUID), neg.Capabilities,
					tc.dialect, tc.signingRequired, tc.guid, tc.caps)
			}
			buf, err := parseSessionSetupResponse(windowsVector(t, tc.name+"_session_setup.bin"))
			if err != nil {
				t.Fatal(err)
			}
			info := Info{Addr: netip.MustParseAddr("192.0.2.7"), Dialect: neg.Dialect, SigningRequired: neg.SigningRequired}
			if err := challengeInto(&info, buf); err != nil {
				t.Fatal(err)
			}
			seen := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
			h := HostOf(info, seen)
			if h.Name != tc.host || h.Domain != tc.domain || h.DNSName != tc.dnsName ||
				h.OS != tc.os || h.OSVersion != tc.osVersion || h.Dialect != tc.dialectStr {
				t.Errorf("host name %q domain %q dns %q os %q version %q dialect %q\nwant      %q        %q     %q     %q         %q         %q",
					h.Name, h.Domain, h.DNSName, h.OS, h.OSVersion, h.Dialect,
					tc.host, tc.domain, tc.dnsName, tc.os, tc.osVersion, tc.dialectStr)
			}
			if h.SigningRequired == nil || *h.SigningRequired != tc.signingRequired {
				t.Errorf("host signing required %v, want %v", h.SigningRequired, tc.signingRequired)
			}
			if len(h.Addrs) != 1 || h.Addrs[0] != info.Addr || !h.FirstSeen.Equal(seen) {
				t.Errorf("host addrs %v first seen %v", h.Addrs, h.FirstSeen)
			}
		})
	}
}

// TestWindowsWorkgroupXP maps the challenge of a Windows XP workgroup
// computer (no domain, unqualified DNS names, no timestamp) to a Host: no
// domain, no DNS name, OS from build 2600.
func TestWindowsWorkgroupXP(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "smbconn", "testdata", "windows", "challenge_xp_workgroup_smb1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	info := Info{Addr: netip.MustParseAddr("192.0.2.8"), Dialect: 0}
	if err := challengeInto(&info, b); err != nil {
		t.Fatal(err)
	}
	h := HostOf(info, time.Now())
	if h.Name != "TEST-F7DFBC3FE9" || h.Domain != "" || h.DNSName != "" || h.OS != "Windows XP" || h.OSVersion != "5.1.2600" {
		t.Errorf("host %+v", h)
	}
}

// TestWindowsWildcardNegotiate: Server 2022 answers an SMB1 multi-protocol
// NEGOTIATE that offers "SMB 2.???" with the SMB2 wildcard dialect 0x02FF
// (MS-SMB2 3.3.5.3.1). The probe never sends SMB1, so such an answer to
// its SMB2 NEGOTIATE is malformed.
func TestWindowsWildcardNegotiate(t *testing.T) {
	_, err := ParseNegotiateResponse(windowsVector(t, "server2022_negotiate_wildcard.bin"))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "wildcard") {
		t.Fatalf("err = %v, want ErrMalformed about the wildcard dialect", err)
	}
}
