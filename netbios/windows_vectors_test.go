package netbios

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lanconnect/lanconnect/discovery"
)

// TestWindowsNodeStatus parses node status answers captured from real
// Windows (testdata/windows/README.md names each source). The expected
// values were read from Wireshark's dissection of the same frames, not
// from this package.
func TestWindowsNodeStatus(t *testing.T) {
	type entry struct {
		name   string
		suffix byte
		flags  NameFlags
	}
	for _, tc := range []struct {
		file     string
		id       uint16
		names    []entry
		mac      string
		computer string
		domain   string
		roles    []discovery.Role
	}{{
		// Server 2016 (build 14393), member of domain "3B".
		file: "nbstat_server2016.bin",
		id:   0x81c5,
		names: []entry{
			{"3B", 0x00, 0x8400},
			{"01566S-WIN16-IR", 0x00, 0x0400},
			{"3B", 0x1c, 0x8400},
			{"01566S-WIN16-IR", 0x20, 0x0400},
			{"3B", 0x1b, 0x0400},
		},
		mac:      "00:50:56:23:45:59",
		computer: "01566S-WIN16-IR",
		domain:   "3B",
		roles: []discovery.Role{discovery.RoleWorkstation, discovery.RoleDomainController,
			discovery.RoleFileServer, discovery.RoleDomainMasterBrowser},
	}, {
		// A workgroup computer (build not in its capture): no domain
		// names, a group WORKGROUP<00>.
		file: "nbstat_workgroup.bin",
		id:   0x8d02,
		names: []entry{
			{"WIN-I82B81NSLLJ", 0x00, 0x0400},
			{"WORKGROUP", 0x00, 0x8400},
			{"WIN-I82B81NSLLJ", 0x20, 0x0400},
		},
		mac:      "0a:02:d7:5e:97:02",
		computer: "WIN-I82B81NSLLJ",
		domain:   "WORKGROUP",
		roles:    []discovery.Role{discovery.RoleWorkstation, discovery.RoleFileServer},
	}} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "windows", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var m Message
			if err := m.Unpack(b); err != nil {
				t.Fatalf("unpack: %v", err)
			}
			if m.ID != tc.id || !m.Response || m.Opcode != OpcodeQuery || !m.Authoritative || m.Broadcast || m.RCode != RCodeSuccess {
				t.Errorf("header %+v", m.Header)
			}
			if len(m.Questions) != 0 || len(m.Answers) != 1 {
				t.Fatalf("%d questions, %d answers; want 0 and 1", len(m.Questions), len(m.Answers))
			}
			if a := m.Answers[0]; a.Type != TypeNBSTAT || a.TTL != 0 || a.Name != WildcardName() {
				t.Errorf("answer record %v %v ttl %d", a.Name, a.Type, a.TTL)
			}
			body, err := m.NodeStatus()
			if err != nil {
				t.Fatal(err)
			}
			var got []entry
			for _, n := range body.Names {
				got = append(got, entry{n.Name.Base(), n.Name.Suffix(), n.Flags})
				if n.Flags.NodeType() != BNode || !n.Flags.Active() {
					t.Errorf("%v: node type %v active %v", n, n.Flags.NodeType(), n.Flags.Active())
				}
			}
			if !slices.Equal(got, tc.names) {
				t.Errorf("names\n got %+v\nwant %+v", got, tc.names)
			}
			if body.StatsLen != statsLen {
				t.Errorf("statistics of %d bytes, want %d", body.StatsLen, statsLen)
			}
			if mac := body.MAC(); mac.String() != tc.mac {
				t.Errorf("MAC %v, want %s", mac, tc.mac)
			}
			id := Identify(body.Names)
			if id.Name != tc.computer || id.Domain != tc.domain || !slices.Equal(id.Roles, tc.roles) || len(id.Users) != 0 {
				t.Errorf("identity %+v, want name %s domain %s roles %v", id, tc.computer, tc.domain, tc.roles)
			}
			// The codec writes Windows' bytes back unchanged.
			out, err := m.Pack()
			if err != nil || !bytes.Equal(out, b) {
				t.Errorf("does not pack back to the same bytes (%v):\n%x\n%x", err, out, b)
			}
		})
	}
}
