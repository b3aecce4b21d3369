package smbconn

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWindowsChallenges parses NTLM CHALLENGE_MESSAGEs that real Windows
// sent (testdata/windows/README.md names each source): over SMB2, in a
// DCE/RPC bind_ack, and in an alter_context_resp. The expected values were
// read from Wireshark's dissection of the same frames, not from this
// package.
func TestWindowsChallenges(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04:05.9999999", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	threeB := ChallengeInfo{
		TargetName: "3B", NetBIOSComputer: "01566S-WIN16-IR", NetBIOSDomain: "3B",
		DNSComputer: "01566s-win16-ir.threebeesco.com", DNSDomain: "threebeesco.com", DNSTree: "threebeesco.com",
		Version: &OSVersion{Major: 10, Minor: 0, Build: 14393, NTLMRevision: 15}, HasTargetInfo: true,
	}
	with := func(ci ChallengeInfo, flags uint32, stamp string) ChallengeInfo {
		ci.Flags = flags
		ci.Timestamp = ts(stamp)
		return ci
	}
	for _, tc := range []struct {
		file string
		want ChallengeInfo
	}{
		{"challenge_server2016_smb.bin", with(threeB, 0xe2898215, "2020-07-19 13:14:41.1663607")},
		{"challenge_server2016_rpc_svcctl.bin", with(threeB, 0xe2898235, "2020-07-19 13:14:41.1976065")},
		{"challenge_server2016_rpc_dcom.bin", with(threeB, 0xe2898235, "2020-07-24 10:13:45.5072363")},
		{"challenge_server2022_smb.bin", ChallengeInfo{
			Flags: 0xe2898235, TargetName: "DOM189", NetBIOSComputer: "DC1", NetBIOSDomain: "DOM189",
			DNSComputer: "dc1.dom189.local", DNSDomain: "dom189.local", DNSTree: "dom189.local",
			Timestamp: ts("2026-03-27 22:45:39.0984969"),
			Version:   &OSVersion{Major: 10, Minor: 0, Build: 20348, NTLMRevision: 15}, HasTargetInfo: true,
		}},
		{"challenge_server2019_smb.bin", ChallengeInfo{
			Flags: 0xe2898235, TargetName: "LAB", NetBIOSComputer: "BAS-AD-01", NetBIOSDomain: "LAB",
			DNSComputer: "bas-ad-01.lab.local", DNSDomain: "lab.local", DNSTree: "lab.local",
			Timestamp: ts("2020-09-15 18:18:12.1213587"),
			Version:   &OSVersion{Major: 10, Minor: 0, Build: 17763, NTLMRevision: 15}, HasTargetInfo: true,
		}},
		{"challenge_win10_2004_smb.bin", ChallengeInfo{
			Flags: 0x62898215, TargetName: "CONTOSO", NetBIOSComputer: "WS02", NetBIOSDomain: "CONTOSO",
			DNSComputer: "ws02.contoso.local", DNSDomain: "contoso.local", DNSTree: "contoso.local",
			Timestamp: ts("2022-02-25 09:41:45.2049237"),
			Version:   &OSVersion{Major: 10, Minor: 0, Build: 19041, NTLMRevision: 15}, HasTargetInfo: true,
		}},
		{"challenge_pyspnego_14393.bin", ChallengeInfo{
			Flags: 0xe2898235, TargetName: "DOMAIN", NetBIOSComputer: "DC01", NetBIOSDomain: "DOMAIN",
			DNSComputer: "DC01.domain.local", DNSDomain: "domain.local", DNSTree: "domain.local",
			Timestamp: ts("2020-04-30 02:46:22.4140792"),
			Version:   &OSVersion{Major: 10, Minor: 0, Build: 14393, NTLMRevision: 15}, HasTargetInfo: true,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "windows", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			ci, err := ParseChallenge(b)
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			if ci.Flags != w.Flags || ci.TargetName != w.TargetName || ci.NetBIOSComputer != w.NetBIOSComputer ||
				ci.NetBIOSDomain != w.NetBIOSDomain || ci.DNSComputer != w.DNSComputer || ci.DNSDomain != w.DNSDomain ||
				ci.DNSTree != w.DNSTree || ci.HasTargetInfo != w.HasTargetInfo {
				t.Errorf("got  %+v\nwant %+v", ci, w)
			}
			if !ci.Timestamp.Equal(w.Timestamp) {
				t.Errorf("timestamp %v, want %v", ci.Timestamp, w.Timestamp)
			}
			if ci.Version == nil || *ci.Version != *w.Version {
				t.Errorf("version %v, want %v", ci.Version, w.Version)
			}
			if !ci.DomainJoined() {
				t.Error("a domain member's challenge reads as not joined")
			}
			// The same message found inside a larger buffer.
			found, err := FindChallenge(append([]byte("\x00prefix\xa1\x81"), b...))
			if err != nil || found.NetBIOSComputer != w.NetBIOSComputer {
				t.Errorf("FindChallenge: %v %q", err, found.NetBIOSComputer)
			}
			// Every truncation is an ErrBadChallenge or parses without a
			// panic; none gives a different computer name.
			for n := 0; n < len(b); n++ {
				part, err := ParseChallenge(b[:n])
				if err != nil && !errors.Is(err, ErrBadChallenge) {
					t.Fatalf("cut at %d: untyped error %v", n, err)
				}
				if err == nil && part.NetBIOSComputer != "" && part.NetBIOSComputer != w.NetBIOSComputer {
					t.Fatalf("cut at %d: computer %q", n, part.NetBIOSComputer)
				}
			}
		})
	}
}
