package smbconn

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
	"unicode/utf16"
)

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, v := range u {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

type av struct {
	id uint16
	v  []byte
}

// buildChallenge assembles a CHALLENGE_MESSAGE the way Windows lays it
// out: header, Version, target name, then target info.
func buildChallenge(flags uint32, target string, pairs []av, version []byte) []byte {
	var info []byte
	for _, p := range pairs {
		info = binary.LittleEndian.AppendUint16(info, p.id)
		info = binary.LittleEndian.AppendUint16(info, uint16(len(p.v)))
		info = append(info, p.v...)
	}
	info = append(info, 0, 0, 0, 0) // MsvAvEOL
	name := utf16le(target)
	hdr := make([]byte, 56)
	copy(hdr, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(hdr[8:], 2)
	binary.LittleEndian.PutUint16(hdr[12:], uint16(len(name)))
	binary.LittleEndian.PutUint16(hdr[14:], uint16(len(name)))
	binary.LittleEndian.PutUint32(hdr[16:], 56)
	binary.LittleEndian.PutUint32(hdr[20:], flags)
	copy(hdr[24:], "\x01\x02\x03\x04\x05\x06\x07\x08")
	binary.LittleEndian.PutUint16(hdr[40:], uint16(len(info)))
	binary.LittleEndian.PutUint16(hdr[42:], uint16(len(info)))
	binary.LittleEndian.PutUint32(hdr[44:], uint32(56+len(name)))
	copy(hdr[48:], version)
	return append(append(hdr, name...), info...)
}

func sampleChallenge() []byte {
	ts := make([]byte, 8)
	// 2024-01-02 03:04:05 UTC as FILETIME.
	binary.LittleEndian.PutUint64(ts, uint64(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Unix())*1e7+116444736000000000)
	return buildChallenge(ntlmNegotiateUnicode|ntlmNegotiateTargetInfo|ntlmNegotiateVersion, "CORP",
		[]av{
			{avNbDomainName, utf16le("CORP")},
			{avNbComputerName, utf16le("HERON-PC")},
			{avDNSDomainName, utf16le("corp.example")},
			{avDNSComputerName, utf16le("heron-pc.corp.example")},
			{avDNSTreeName, utf16le("corp.example")},
			{avTimestamp, ts},
		},
		[]byte{10, 0, 0x4F, 0x4F, 0, 0, 0, 15}) // 10.0.20303
}

func TestParseChallenge(t *testing.T) {
	ci, err := ParseChallenge(sampleChallenge())
	if err != nil {
		t.Fatal(err)
	}
	if ci.TargetName != "CORP" || ci.NetBIOSComputer != "HERON-PC" || ci.NetBIOSDomain != "CORP" ||
		ci.DNSComputer != "heron-pc.corp.example" || ci.DNSDomain != "corp.example" || ci.DNSTree != "corp.example" {
		t.Fatalf("names: %+v", ci)
	}
	if !ci.HasTargetInfo || !ci.DomainJoined() {
		t.Fatalf("flags: %+v", ci)
	}
	if want := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC); !ci.Timestamp.Equal(want) {
		t.Fatalf("timestamp %v, want %v", ci.Timestamp, want)
	}
	if ci.Version == nil || ci.Version.String() != "10.0.20303" || ci.Version.NTLMRevision != 15 {
		t.Fatalf("version %+v", ci.Version)
	}
}

func TestParseChallengeWorkgroupNoVersion(t *testing.T) {
	msg := buildChallenge(ntlmNegotiateUnicode|ntlmNegotiateTargetInfo, "PC1",
		[]av{{avNbDomainName, utf16le("PC1")}, {avNbComputerName, utf16le("pc1")}}, nil)
	ci, err := ParseChallenge(msg)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Version != nil || ci.DomainJoined() {
		t.Fatalf("%+v", ci)
	}
}

func TestFindChallengeInsideBlob(t *testing.T) {
	blob := append([]byte{0xa1, 0x81, 0xc0, 0x30, 0x81, 0xbd, 0xa0, 0x03, 0x0a, 0x01, 0x01, 0xa2, 0x81}, sampleChallenge()...)
	ci, err := FindChallenge(blob)
	if err != nil || ci.NetBIOSComputer != "HERON-PC" {
		t.Fatalf("FindChallenge: %+v, %v", ci, err)
	}
	if _, err := FindChallenge([]byte("no ntlm here")); !errors.Is(err, ErrBadChallenge) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseChallengeMalformed(t *testing.T) {
	good := sampleChallenge()
	cases := map[string][]byte{
		"empty":     nil,
		"short":     good[:40],
		"signature": append([]byte("NTLMSSQ\x00"), good[8:]...),
		"type":      func() []byte { b := append([]byte(nil), good...); b[8] = 3; return b }(),
		"name offset": func() []byte {
			b := append([]byte(nil), good...)
			binary.LittleEndian.PutUint32(b[16:], 0xFFFFFFF0)
			return b
		}(),
		"info length": func() []byte {
			b := append([]byte(nil), good...)
			binary.LittleEndian.PutUint16(b[40:], 0xFFFF)
			return b
		}(),
		"av truncated":  good[:len(good)-20],
		"odd utf16":     buildChallenge(ntlmNegotiateUnicode, "", []av{{avNbComputerName, []byte{1, 2, 3}}}, nil),
		"bad timestamp": buildChallenge(ntlmNegotiateUnicode, "", []av{{avTimestamp, []byte{1, 2}}}, nil),
	}
	for name, b := range cases {
		if _, err := ParseChallenge(b); !errors.Is(err, ErrBadChallenge) {
			t.Errorf("%s: err = %v, want ErrBadChallenge", name, err)
		}
	}
}

// FuzzParseChallenge checks that no input panics and that a successful
// parse is consistent with its input.
func FuzzParseChallenge(f *testing.F) {
	f.Add(sampleChallenge())
	f.Add(buildChallenge(0, "X", nil, nil))
	f.Add([]byte("NTLMSSP\x00\x02\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ci, err := ParseChallenge(b)
		if err != nil {
			if !errors.Is(err, ErrBadChallenge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(b) < 48 {
			t.Fatalf("parsed %d bytes", len(b))
		}
		if ci.HasTargetInfo && binary.LittleEndian.Uint16(b[40:]) == 0 {
			t.Fatal("target info from an empty field")
		}
		_, _ = FindChallenge(b)
	})
}
