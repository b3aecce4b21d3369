package netbios

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lanconnect/lanconnect/discovery"
)

var update = flag.Bool("update", false, "rewrite testdata/hostile from the hand-built table")

func TestNameEncodingRFCExample(t *testing.T) {
	// RFC 1001 section 14.1: "FRED" padded with spaces.
	n := MustName("fred", ' ')
	b, err := appendName(nil, n)
	if err != nil {
		t.Fatal(err)
	}
	want := "\x20EGFCEFEECACACACACACACACACACACACA\x00"
	if string(b) != want {
		t.Fatalf("encoded %q, want %q", b, want)
	}
	got, next, err := decodeName(b, 0, false)
	if err != nil || next != len(b) || got != n {
		t.Fatalf("decode = %v, %d, %v; want %v", got, next, err, n)
	}
	if got.Base() != "FRED" || got.String() != "FRED<20>" {
		t.Fatalf("Base %q String %q", got.Base(), got.String())
	}
}

func TestWildcardName(t *testing.T) {
	b, _ := appendName(nil, WildcardName())
	if want := "\x20CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00"; string(b) != want {
		t.Fatalf("wildcard encodes as %q, want %q", b, want)
	}
}

func TestNameErrors(t *testing.T) {
	for _, s := range []string{"", "SIXTEEN-CHARS-XX"} {
		if _, err := NewName(s, 0); !errors.Is(err, ErrBadName) {
			t.Errorf("NewName(%q) error %v, want ErrBadName", s, err)
		}
	}
	n := MustName("A", 0)
	n.Scope = "ok.." // empty label
	if _, err := n.Pack(); !errors.Is(err, ErrBadName) {
		t.Errorf("empty scope label: %v", err)
	}
	n.Scope = strings.Repeat("a", 64)
	if _, err := n.Pack(); !errors.Is(err, ErrBadName) {
		t.Errorf("64-byte scope label: %v", err)
	}
	n.Scope = strings.Repeat(strings.Repeat("a", 60)+".", 4) + "a"
	if _, err := n.Pack(); !errors.Is(err, ErrBadName) {
		t.Errorf("scope over 255 bytes: %v", err)
	}
}

// Pack on a Name is a test helper: a question-only message.
func (n Name) Pack() ([]byte, error) {
	return NewNameQueryRequest(1, n, false).Pack()
}

func TestScopeRoundTrip(t *testing.T) {
	n := MustName("heron", SuffixFileServer)
	n.Scope = "NETBIOS.EXAMPLE.COM"
	m := NewNameQueryRequest(0x1234, n, true)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var got Message
	if err := got.Unpack(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, *m)
	}
	if s := got.Questions[0].Name.String(); s != "HERON<20>.NETBIOS.EXAMPLE.COM" {
		t.Fatalf("String = %q", s)
	}
}

func TestRequestsOnTheWire(t *testing.T) {
	// What nbtscan and Windows' nbtstat -A send: NBSTAT for "*", no flags.
	b, err := NewNodeStatusRequest(0xbeef, WildcardName()).Pack()
	if err != nil {
		t.Fatal(err)
	}
	want := "beef0000000100000000000020434b4141414141414141414141414141414141414141414141414141414141410000210001"
	if hex.EncodeToString(b) != want {
		t.Fatalf("NBSTAT request\n got %x\nwant %s", b, want)
	}
	b, _ = NewNameQueryRequest(7, MustName("wg", 0), true).Pack()
	if b[2] != 0x01 || b[3] != 0x10 {
		t.Fatalf("broadcast query flags %02x%02x, want 0110", b[2], b[3])
	}
}

// sampleNodeStatus is a name table like the one nmbd answers with.
func sampleNodeStatus(id uint16) *Message {
	act := NameFlagActive
	grp := NameFlagActive | NameFlagGroup
	body := &NodeStatusBody{
		Names: []NodeName{
			{MustName("HERON", 0x00), act},
			{MustName("HERON", 0x03), act},
			{MustName("HERON", 0x20), act},
			{MustName("LABGROUP", 0x00), grp},
			{MustName("LABGROUP", 0x1e), grp},
			{MustName("LABGROUP", 0x1d), act},
			{Name{Raw: [16]byte([]byte(MSBrowse + "\x01"))}, grp},
		},
		StatsLen: statsLen,
	}
	body.Stats.UnitID = [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	return &Message{
		Header:  Header{ID: id, Response: true, Authoritative: true},
		Answers: []Resource{{Name: WildcardName(), Type: TypeNBSTAT, Class: ClassINET, Body: body}},
	}
}

func TestNodeStatusRoundTripAndIdentity(t *testing.T) {
	m := sampleNodeStatus(42)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var got Message
	if err := got.Unpack(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, m) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, *m)
	}
	ns, err := got.NodeStatus()
	if err != nil {
		t.Fatal(err)
	}
	if mac := ns.MAC().String(); mac != "52:54:00:12:34:56" {
		t.Fatalf("MAC %s", mac)
	}
	id := Identify(ns.Names)
	wantRoles := []discovery.Role{discovery.RoleWorkstation, discovery.RoleMessenger, discovery.RoleFileServer,
		discovery.RoleBrowserElection, discovery.RoleMasterBrowser}
	if id.Name != "HERON" || id.Domain != "LABGROUP" || !slices.Equal(id.Roles, wantRoles) || len(id.Users) != 0 {
		t.Fatalf("Identify = %+v", id)
	}
	if !ns.Names[3].Flags.Group() || ns.Names[0].Flags.Group() || !ns.Names[0].Flags.Active() {
		t.Fatal("flags misread")
	}
}

func TestIdentifyRoles(t *testing.T) {
	act, grp := NameFlagActive, NameFlagActive|NameFlagGroup
	names := []NodeName{
		{MustName("DC1", 0x20), act},
		{MustName("CORP", 0x1c), grp},
		{MustName("CORP", 0x1b), act},
		{MustName("ALICE", 0x03), act},
		{MustName("GHOST", 0x00), act | NameFlagConflict},
	}
	id := Identify(names)
	want := []discovery.Role{discovery.RoleFileServer, discovery.RoleDomainController, discovery.RoleDomainMasterBrowser, discovery.RoleMessenger}
	if id.Name != "DC1" || id.Domain != "CORP" || !slices.Equal(id.Roles, want) || !slices.Equal(id.Users, []string{"ALICE"}) {
		t.Fatalf("Identify = %+v", id)
	}
}

func TestNameQueryResponses(t *testing.T) {
	name := MustName("HERON", 0)
	pos := &Message{
		Header: Header{ID: 9, Response: true, Authoritative: true, RecursionDesired: true},
		Answers: []Resource{{Name: name, Type: TypeNB, Class: ClassINET, TTL: 300000, Body: &NBBody{Entries: []NBEntry{
			{Flags: 0x6000, Addr: netip.MustParseAddr("10.1.2.3")},
			{Flags: 0x6000, Addr: netip.MustParseAddr("10.9.2.3")},
		}}}},
	}
	b, _ := pos.Pack()
	var m Message
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	es, err := m.NameQueryAnswer()
	if err != nil || len(es) != 2 || es[1].Addr != netip.MustParseAddr("10.9.2.3") || es[0].Flags.NodeType() != HNode || es[0].Flags.Group() {
		t.Fatalf("positive answer %+v %v", es, err)
	}
	neg := &Message{
		Header:  Header{ID: 9, Response: true, Authoritative: true, RecursionDesired: true, RCode: RCodeNameError},
		Answers: []Resource{{Name: name, Type: TypeNull, Class: ClassINET, Body: &RawBody{}}},
	}
	b, _ = neg.Pack()
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	_, err = m.NameQueryAnswer()
	var rerr *RCodeError
	if !errors.Is(err, ErrNameNotFound) || !errors.As(err, &rerr) || rerr.Name != name {
		t.Fatalf("negative answer error %v", err)
	}
}

func TestCompressionPointerInAnswer(t *testing.T) {
	// A response whose answer name points back at the question name, as
	// RFC 1002 section 4.2.2 does for registrations.
	q := NewNameQueryRequest(5, MustName("HERON", 0), false)
	b, _ := q.Pack()
	b[7] = 1 // ANCOUNT
	b = append(b, 0xC0, 12, 0, 0x20, 0, 1, 0, 0, 0, 0, 0, 6, 0x60, 0, 10, 0, 0, 1)
	var m Message
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	if m.Answers[0].Name != m.Questions[0].Name {
		t.Fatalf("pointer name %v", m.Answers[0].Name)
	}
}

// hostile is the hand-built table of bad packets, each with the error it
// must produce. With -update it is written to testdata/hostile, which also
// seeds the fuzzer.
func hostile() map[string]struct {
	pkt  []byte
	want error
} {
	valid, _ := sampleNodeStatus(1).Pack()
	query, _ := NewNameQueryRequest(5, MustName("HERON", 0), false).Pack()
	withAnswer := func(q []byte, tail ...byte) []byte {
		b := append([]byte(nil), q...)
		b[7] = 1
		return append(b, tail...)
	}
	badLetter := append([]byte(nil), query...)
	badLetter[13] = 'Z'
	shortLabel := append([]byte(nil), query...)
	shortLabel[12] = 31
	reserved := append([]byte(nil), query...)
	reserved[12] = 0x40
	qPtr := append([]byte(nil), query[:12]...)
	qPtr = append(qPtr, 0xC0, 12, 0, 0x20, 0, 1)
	tooManyNames := append([]byte(nil), valid...)
	tooManyNames[12+34+10] = 200 // NUM_NAMES far beyond RDLENGTH
	nbOdd := withAnswer(query, 0xC0, 12, 0, 0x20, 0, 1, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5)
	longScope := append([]byte(nil), query[:12+33]...)
	for range 5 {
		longScope = append(longScope, 60)
		longScope = append(longScope, bytes.Repeat([]byte{'a'}, 60)...)
	}
	longScope = append(longScope, 0, 0, 0x20, 0, 1)
	dotScope := append(append([]byte(nil), query[:12+33]...), 3, 'a', '.', 'b', 0, 0, 0x20, 0, 1)
	chain := append(withAnswer(query, 0xC0, 12, 0, 0x20, 0, 1, 0, 0, 0, 0, 0, 0), 0xC0, byte(len(query)), 0, 0x20, 0, 1, 0, 0, 0, 0, 0, 0)
	chain[7] = 2
	hugeCounts := []byte{0, 1, 0x84, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	return map[string]struct {
		pkt  []byte
		want error
	}{
		"short-header":      {valid[:11], ErrTruncated},
		"truncated-rdata":   {valid[:len(valid)-1], ErrTruncated},
		"truncated-name":    {query[:30], ErrTruncated},
		"bad-letter":        {badLetter, ErrBadName},
		"label-not-32":      {shortLabel, ErrBadName},
		"reserved-label":    {reserved, ErrBadLabel},
		"pointer-question":  {qPtr, ErrBadPointer},
		"pointer-self":      {withAnswer(query, 0xC0, byte(len(query))), ErrBadPointer},
		"pointer-forward":   {withAnswer(query, 0xC0, 0xff, 0, 0x20, 0, 1), ErrBadPointer},
		"pointer-header":    {withAnswer(query, 0xC0, 2, 0, 0x20, 0, 1), ErrBadPointer},
		"pointer-chain":     {chain, ErrBadPointer},
		"pointer-truncated": {withAnswer(query, 0xC0), ErrTruncated},
		"nbstat-num-names":  {tooManyNames, ErrInconsistent},
		"nbstat-empty":      {withAnswer(query, 0xC0, 12, 0, 0x21, 0, 1, 0, 0, 0, 0, 0, 0), ErrInconsistent},
		"nb-rdlen-odd":      {nbOdd, ErrInconsistent},
		"scope-too-long":    {longScope, ErrNameTooLong},
		"scope-dot":         {dotScope, ErrBadLabel},
		"huge-counts":       {hugeCounts, ErrTruncated},
	}
}

func TestHostilePackets(t *testing.T) {
	table := hostile()
	if *update {
		dir := filepath.Join("testdata", "hostile")
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, c := range table {
			if err := os.WriteFile(filepath.Join(dir, name+".bin"), c.pkt, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.bin"))
	if len(files) != len(table) {
		t.Fatalf("testdata/hostile has %d files, table %d: run go test -run TestHostilePackets -update", len(files), len(table))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bin")
		t.Run(name, func(t *testing.T) {
			pkt, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := table[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			var m Message
			err = m.Unpack(pkt)
			var perr *ParseError
			if !errors.Is(err, c.want) || !errors.As(err, &perr) {
				t.Fatalf("Unpack error %v, want %v in a *ParseError", err, c.want)
			}
			if perr.Offset < 0 || perr.Offset > len(pkt) {
				t.Fatalf("offset %d outside packet of %d bytes", perr.Offset, len(pkt))
			}
		})
	}
}

func TestEveryTruncationFails(t *testing.T) {
	valid, _ := sampleNodeStatus(1).Pack()
	for i := range len(valid) {
		var m Message
		if err := m.Unpack(valid[:i]); err == nil {
			t.Fatalf("Unpack of %d/%d bytes succeeded", i, len(valid))
		}
	}
}

func TestUnpackAllocations(t *testing.T) {
	valid, _ := sampleNodeStatus(1).Pack()
	var m Message
	allocs := testing.AllocsPerRun(100, func() {
		if err := m.Unpack(valid); err != nil {
			t.Fatal(err)
		}
	})
	// Answers slice, NodeStatusBody, its names slice.
	if allocs > 3 {
		t.Fatalf("Unpack of a node status response allocates %v times", allocs)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = ParseHeader(valid) }); a != 0 {
		t.Fatalf("ParseHeader allocates %v", a)
	}
}

func FuzzUnpack(f *testing.F) {
	for _, c := range hostile() {
		f.Add(c.pkt)
	}
	valid, _ := sampleNodeStatus(1).Pack()
	f.Add(valid)
	captured, _ := filepath.Glob(filepath.Join("testdata", "nmbd", "*.bin"))
	for _, p := range captured {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := m.Unpack(b); err != nil {
			var perr *ParseError
			if !errors.As(err, &perr) || perr.Offset < 0 || perr.Offset > len(b) {
				t.Fatalf("untyped error or bad offset: %v", err)
			}
			return
		}
		// What parses must pack, and re-parse to the same message.
		out, err := m.Pack()
		if err != nil {
			return // e.g. a scope label with a byte Pack refuses
		}
		var m2 Message
		if err := m2.Unpack(out); err != nil {
			t.Fatalf("re-unpack of packed message: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", m, m2)
		}
	})
}

// TestCapturedVectors parses answers captured from the lab's nmbd (see
// captureVectors in lab_test.go) and packs them back to the same bytes.
func TestCapturedVectors(t *testing.T) {
	meta, err := os.ReadFile(filepath.Join("testdata", "nmbd", "capture.txt"))
	if err != nil {
		t.Skip("no captured vectors")
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(meta)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		want[k] = v
	}
	read := func(file string) (*Message, []byte) {
		b, err := os.ReadFile(filepath.Join("testdata", "nmbd", file))
		if err != nil {
			t.Fatal(err)
		}
		var m Message
		if err := m.Unpack(b); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out, err := m.Pack()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("%s does not pack back to the same bytes (%v):\n%x\n%x", file, err, out, b)
		}
		return &m, b
	}
	m, _ := read("nbstat-response.bin")
	ns, err := m.NodeStatus()
	if err != nil {
		t.Fatal(err)
	}
	id := Identify(ns.Names)
	if id.Name != want["name"] || id.Domain != want["workgroup"] || ns.MAC() != nil || ns.StatsLen != 46 || !m.Authoritative {
		t.Fatalf("nmbd name table: %+v, MAC %v, stats %d", id, ns.MAC(), ns.StatsLen)
	}
	for _, r := range []discovery.Role{discovery.RoleWorkstation, discovery.RoleMessenger, discovery.RoleFileServer, discovery.RoleBrowserElection} {
		if !slices.Contains(id.Roles, r) {
			t.Errorf("roles %v lack %s", id.Roles, r)
		}
	}
	m, _ = read("query-positive.bin")
	es, err := m.NameQueryAnswer()
	if err != nil || len(es) != 1 || es[0].Addr.String() != want["addr"] || es[0].Flags.Group() {
		t.Fatalf("positive query answer %+v %v", es, err)
	}
}

func BenchmarkUnpackNodeStatus(b *testing.B) {
	pkt, err := os.ReadFile(filepath.Join("testdata", "nmbd", "nbstat-response.bin"))
	if err != nil {
		pkt, _ = sampleNodeStatus(1).Pack()
	}
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := m.Unpack(pkt); err != nil {
			b.Fatal(err)
		}
	}
}
