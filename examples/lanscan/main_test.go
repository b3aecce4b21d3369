package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/netbios/nbnstest"
)

// startFakes starts k fake workstations on UDP 137 of a random loopback
// /24 (port 137 needs root; the test skips without it).
func startFakes(t *testing.T, k int) (*nbnstest.Net, string) {
	t.Helper()
	n := [3]byte{127, byte(100 + rand.IntN(100)), byte(rand.IntN(256))}
	var hosts []*nbnstest.Node
	for i := range k {
		a := netip.AddrFrom4([4]byte{n[0], n[1], n[2], byte(20 + i)})
		hosts = append(hosts, nbnstest.Workstation(a, fmt.Sprintf("PC%02d", i), "SCANGROUP"))
	}
	fn, err := nbnstest.StartPort(hosts, netip.Addr{}, 137)
	if err != nil {
		t.Skipf("cannot listen on loopback port 137: %v", err)
	}
	t.Cleanup(fn.Close)
	return fn, fmt.Sprintf("%d.%d.%d.0/24", n[0], n[1], n[2])
}

func runLanscan(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, strings.NewReader(""), &out, &errb, false)
	return code, out.String(), errb.String()
}

func TestJSONSchema(t *testing.T) {
	_, cidr := startFakes(t, 3)
	code, out, errs := runLanscan(t, "-json", "-rate", "5000", "-timeout", "300ms", cidr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	names := map[string]bool{}
	for sc.Scan() {
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		for _, k := range []string{"name", "dns_name", "addrs", "domain", "os", "os_version", "mac", "roles", "sources", "first_seen", "last_seen"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("line %s lacks %q", sc.Text(), k)
			}
		}
		var h hostJSON
		json.Unmarshal(sc.Bytes(), &h)
		if h.Domain != "SCANGROUP" || len(h.Addrs) != 1 || !slices.Equal(h.Sources, []string{"netbios"}) ||
			!slices.Contains(h.Roles, "workstation") || h.MAC != "" {
			t.Fatalf("host %+v", h)
		}
		if _, err := time.Parse(time.RFC3339Nano, h.FirstSeen); err != nil {
			t.Fatalf("first_seen %q: %v", h.FirstSeen, err)
		}
		names[h.Name] = true
	}
	if len(names) != 3 || !names["PC00"] || !names["PC02"] {
		t.Fatalf("names %v", names)
	}
}

func TestJSONConflict(t *testing.T) {
	real := toJSON(1, discovery.Host{Name: "HERON", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.5")}, TrustedAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.5")}})
	rogue := toJSON(2, discovery.Host{Name: "HERON", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.66")}, Conflict: "claims the name HERON, which DNS or the directory places at 10.0.0.5"})
	b1, _ := json.Marshal(real)
	b2, _ := json.Marshal(rogue)
	if !strings.Contains(string(b1), `"trusted_addrs":["10.0.0.5"]`) || strings.Contains(string(b1), `"conflict"`) {
		t.Fatalf("trusted host: %s", b1)
	}
	if !strings.Contains(string(b2), `"conflict":"claims the name HERON`) || strings.Contains(string(b2), `"trusted_addrs"`) {
		t.Fatalf("claimant: %s", b2)
	}
}

func TestFilterAndTable(t *testing.T) {
	fn, cidr := startFakes(t, 4)
	code, out, errs := runLanscan(t, "-rate", "5000", "-timeout", "300ms", "-filter", "pc01, "+fn.Nodes[3].Addr.String(), cidr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ADDRESS") {
		t.Fatalf("table:\n%s", out)
	}
	got := lines[1] + lines[2]
	if !strings.Contains(got, "PC01") || !strings.Contains(got, "PC03") || strings.Contains(got, "PC00") {
		t.Fatalf("table:\n%s", out)
	}
}

func TestNoHostsIsSuccess(t *testing.T) {
	code, out, errs := runLanscan(t, "-timeout", "100ms", "127.0.0.200-127.0.0.203")
	if code != 0 || out != "" || errs != "" {
		t.Fatalf("exit %d, out %q, err %q", code, out, errs)
	}
}

func TestBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"10.0.0.300"},
		{"::1"},
		{"-rate", "0", "10.0.0.1"},
		{"-rate", "fast"},
		{"-retries", "-1", "10.0.0.1"},
		{"-timeout", "0s", "10.0.0.1"},
		{"-filter", "10.1.2", "10.0.0.1"},
		{"-nosuchflag"},
		{"-ldap-domain", "corp.example", "-ldap-bind", "simple", "-user", `CORP\alice`, "-no-netbios"},
		{"-ldap-domain", "corp.example", "-ldap-dns", "dc", "-no-netbios"},
	} {
		code, out, errs := runLanscan(t, args...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "lanscan: ") {
			t.Errorf("lanscan %v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

func TestProgressLineOnTerminal(t *testing.T) {
	_, cidr := startFakes(t, 2)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"-rate", "500", "-timeout", "200ms", cidr}, strings.NewReader(""), &out, &errb, true)
	if code != 0 {
		t.Fatalf("exit %d: %q", code, errb.String())
	}
	if !strings.Contains(errb.String(), "scanning: ") || !strings.HasSuffix(errb.String(), "\r\033[K") {
		t.Fatalf("stderr %q: want a progress line, cleared at the end", errb.String())
	}
	if strings.Contains(out.String(), "\033") || strings.Count(out.String(), "\n") != 3 {
		t.Fatalf("stdout %q", out.String())
	}
}

func TestInteractiveFilter(t *testing.T) {
	fn, _ := startFakes(t, 4)
	first, last := fn.Nodes[0].Addr, fn.Nodes[3].Addr
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	var errb bytes.Buffer
	codec := make(chan int, 1)
	go func() {
		// Five packets a second: the four hosts are found over 0.8 s.
		codec <- run(context.Background(), []string{"-interactive", "-rate", "5", "-timeout", "300ms", first.String() + "-" + last.String()},
			stdinR, stdoutW, &errb, false)
		stdoutW.Close()
	}()
	visible := map[string]bool{}
	filtered := false
	sc := bufio.NewScanner(stdoutR)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] == "ADDRESS" {
			continue
		}
		if strings.Contains(sc.Text(), "(removed from the list)") {
			delete(visible, f[1])
		} else {
			visible[f[1]] = true
			if filtered && f[1] != "PC03" {
				t.Errorf("shown after the filter: %s", sc.Text())
			}
		}
		if !filtered {
			// The first host is listed: narrow the list while the scan runs.
			io.WriteString(stdinW, "pc03\n")
			filtered = true
		}
	}
	stdinW.Close()
	if code := <-codec; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if len(visible) != 1 || !visible["PC03"] || !strings.Contains(errb.String(), `filter now "pc03"`) {
		t.Fatalf("visible at the end %v, stderr %q", visible, errb.String())
	}
}

// TestNoSimpleBindWithLDAPDomain: -ldap-bind simple with a DC found
// through SRV records is refused at start, before any lookup.
func TestNoSimpleBindWithLDAPDomain(t *testing.T) {
	t.Setenv("LANCONNECT_PASSWORD", "Pw-not-sent-1")
	code, out, errs := runLanscan(t, "-ldap-domain", "corp.example", "-ldap-bind", "simple", "-user", `CORP\alice`, "-no-netbios")
	if code != 2 || out != "" || !strings.Contains(errs, "-ldap-bind simple needs the DC's -ldap URL") || strings.Contains(errs, "Pw-not-sent-1") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestHostileNamesOnTheTerminal: names and domains from the network are
// printed with their control characters escaped in the table, and left to
// JSON's escaping in NDJSON.
func TestHostileNamesOnTheTerminal(t *testing.T) {
	h := discovery.Host{
		Name:    "EVIL\x1b[2J\x1b]0;owned\x07",
		Domain:  "CORP\rFAKE",
		Addrs:   []netip.Addr{netip.MustParseAddr("10.0.0.9")},
		Sources: []discovery.Source{discovery.SourceNetBIOS},
	}
	var out bytes.Buffer
	tp := newTablePrinter(&out)
	if err := tp.print(discovery.ViewEvent{Kind: discovery.Show, ID: 1, Host: h}); err != nil {
		t.Fatal(err)
	}
	if err := tp.print(discovery.ViewEvent{Kind: discovery.Hide, ID: 1, Host: h}); err != nil {
		t.Fatal(err)
	}
	for _, r := range out.String() {
		if r < 0x20 && r != '\n' || r == 0x7f {
			t.Fatalf("control character %q reached the terminal:\n%q", r, out.String())
		}
	}
	if !strings.Contains(out.String(), `EVIL\x1b[2J\x1b]0;owned\x07`) || !strings.Contains(out.String(), `CORP\x0dFAKE`) {
		t.Fatalf("table does not show the escaped names:\n%s", out.String())
	}
	var js bytes.Buffer
	jp := &jsonPrinter{enc: json.NewEncoder(&js)}
	if err := jp.print(discovery.ViewEvent{Kind: discovery.Show, ID: 1, Host: h}); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back["name"] != h.Name || strings.ContainsRune(js.String(), 0x1b) {
		t.Fatalf("NDJSON: %v %q", err, js.String())
	}
}
