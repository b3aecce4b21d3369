package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/internal/testutil"
)

// benchHosts is the size of the bulk run of TestKerberosBench.
const benchHosts = 16

// TestKerberosBench compares connect -auth kerberos with -auth ntlm on the
// same domain members in one run, and counts the AS-REQs that reach the
// KDC during a bulk Kerberos run. It runs only with
// LANCONNECT_BENCH_KERBEROS=1 (scripts/bench-kerberos.sh, make
// bench-kerberos), never under plain go test:
//
//	LANCONNECT_BENCH_ROUNDS  measured rounds (default 3)
//	LANCONNECT_BENCH_LOGS    a directory to keep each run's stderr (connect -v) in
//
// The lab is a DC with NTLM allowed and 16 domain members, each running
// winemu with its host/ keys (Kerberos) and the domain Administrator's
// password (NTLM), so that both methods reach Running on the same hosts:
// Samba's SCM on the pipe cannot create the service, the SCM over TCP
// (winemu) does, and the applet checks in. connect runs in the lab's
// client namespace, whose DNS is the DC, and names the members by DNS
// name. A warm-up run spawns every member's RPC daemons first; then each
// round runs Kerberos and NTLM to one member and to all 16 (order
// alternating per round). Each run is captured with dumpcap in the DC's
// namespace (TCP 88, the client's address), and tshark counts the
// KRB_AS_REQ (msg-type 10) and KRB_TGS_REQ (12) messages the KDC received
// and the PREAUTH_REQUIRED errors it sent, next to connect's own
// "kerberos KDC traffic" counters.
//
// It prints lines starting with BENCH. It fails when a run does not reach
// Running on every host, or when the KDC's count and connect's disagree;
// it does not fail on timings, which depend on the machine's load.
func TestKerberosBench(t *testing.T) {
	if os.Getenv("LANCONNECT_BENCH_KERBEROS") != "1" {
		t.Skip("set LANCONNECT_BENCH_KERBEROS=1 (scripts/bench-kerberos.sh)")
	}
	for _, tool := range []string{"dumpcap", "tshark"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/setup.sh installs tshark)", tool)
		}
	}
	rounds := 3
	if s := os.Getenv("LANCONNECT_BENCH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("LANCONNECT_BENCH_ROUNDS=%q: want a positive number", s)
		}
		rounds = n
	}
	buildAll(t)
	specs := make([]testlab.TargetSpec, benchHosts)
	for i := range specs {
		specs[i].DomainMember = true
	}
	t0 := time.Now()
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{}, Targets: specs, Client: true})
	t.Logf("BENCH lab: %d members, started in %v (%s)", benchHosts, time.Since(t0).Round(time.Millisecond), lab.Timings())
	dc := lab.DC
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	// winemu on every member: Kerberos with the member's host/ keys, and
	// NTLM with the domain Administrator's password.
	bin := buildBin(t, "winemu", "github.com/lanconnect/lanconnect/internal/winemu/cmd/winemu")
	t.Setenv("WINEMU_PASSWORD", dc.Admin.Password)
	var hosts []string
	for _, m := range lab.Targets {
		kt := filepath.Join(t.TempDir(), "host.keytab")
		if err := m.ExportKeytab(ctx, "host/"+m.FQDN, kt); err != nil {
			t.Fatal(err)
		}
		p, err := m.Start(ctx, bin, "-listen", m.Addr.String(), "-root", m.AdminDir, "-user", dc.Admin.User,
			"-name", m.NetBIOSName, "-workgroup", m.Workgroup, "-keytab", kt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop() })
		waitPort(t, net.JoinHostPort(m.Addr.String(), "135"), p)
		hosts = append(hosts, m.FQDN)
	}

	applet := buildBin(t, "applet", "github.com/lanconnect/lanconnect/examples/applet")
	base := []string{"-console", net.JoinHostPort(lab.Client.Addr.String(), "0"), "-applet", applet, "-checkin-timeout", "60s",
		"-method", "scm", "-concurrency", strconv.Itoa(benchHosts), "-user", dc.Domain + `\` + dc.Admin.User}
	capDir := t.TempDir()
	seq := 0
	// run connects to hs with auth, under a KDC capture, and checks that
	// every host reached Running with auth and closed clean.
	run := func(auth string, hs []string) (runResult, []time.Duration, []time.Duration, kdcCount) {
		t.Helper()
		seq++
		pcap := filepath.Join(capDir, fmt.Sprintf("%02d-%s-%d.pcap", seq, auth, len(hs)))
		stop := startKDCCapture(ctx, t, dc, lab.Client.Addr.String(), pcap)
		r := runConnectIn(ctx, t, lab.Client, dc.Admin.Password, append(append(base, "-auth", auth), hs...)...)
		stop()
		if dir := os.Getenv("LANCONNECT_BENCH_LOGS"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, strings.TrimSuffix(filepath.Base(pcap), ".pcap")+".log"), []byte(r.stderr), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var took, logon []time.Duration
		for _, h := range hs {
			checkRunningThenClosed(t, r, h, "scm")
			run := runningEvent(t, r, h)
			if got, _ := run.raw["auth"].(string); got != auth {
				t.Fatalf("%s: Running with auth %q, want %q", h, got, auth)
			}
			evs := r.of(h)
			t0, _ := time.Parse(time.RFC3339Nano, evs[0].Time)
			t1, _ := time.Parse(time.RFC3339Nano, run.Time)
			took = append(took, t1.Sub(t0))
			// The authenticate step: from the first event to the
			// first of the preflight.
			for _, e := range evs {
				if e.Step == "preflight" {
					t2, _ := time.Parse(time.RFC3339Nano, e.Time)
					logon = append(logon, t2.Sub(t0))
					break
				}
			}
		}
		return r, took, logon, countKDC(ctx, t, pcap, lab.Client.Addr.String())
	}

	// Warm-up: every member's samba-dcerpcd is spawned at its first RPC
	// (about a second each); neither method should pay for it below.
	_, warm, _, _ := run("ntlm", hosts)
	t.Logf("BENCH warm-up (ntlm, %d hosts): %s", len(hosts), stats(warm))

	type series struct {
		took  []time.Duration // every host of every run
		logon []time.Duration // their authenticate steps
		walls []time.Duration // connect processes
	}
	res := map[string]*series{}
	key := func(auth string, n int) string { return fmt.Sprintf("%s/%d", auth, n) }
	var bulkKDC []kdcCount
	var bulkLog []string
	for round := 0; round < rounds; round++ {
		order := []string{"kerberos", "ntlm"}
		if round%2 == 1 {
			order = []string{"ntlm", "kerberos"}
		}
		for _, hs := range [][]string{hosts[:1], hosts} {
			for _, auth := range order {
				r, took, logon, kdc := run(auth, hs)
				k := key(auth, len(hs))
				if res[k] == nil {
					res[k] = &series{}
				}
				res[k].took = append(res[k].took, took...)
				res[k].logon = append(res[k].logon, logon...)
				res[k].walls = append(res[k].walls, r.took)
				own := kdcTraffic.FindStringSubmatch(r.stderr)
				switch auth {
				case "ntlm":
					if own != nil || kdc.asReqs+kdc.tgsReqs != 0 {
						t.Fatalf("ntlm run: connect logged %q, the KDC saw %+v; want no Kerberos", own, kdc)
					}
				case "kerberos":
					if own == nil {
						t.Fatalf("kerberos run: no KDC traffic line\nstderr:\n%s", r.stderr)
					}
					// The KDC's count must be connect's: what connect
					// counts is what went on the wire.
					if strconv.Itoa(kdc.asReqs) != own[2] || strconv.Itoa(kdc.tgsReqs) != own[3] {
						t.Fatalf("%d hosts: the KDC saw %+v, connect logged %s", len(hs), kdc, own[0])
					}
					// Per credential one AS exchange: one AS-REQ without
					// pre-authentication, refused, and one with it.
					if own[1] != "1" || kdc.asReqs != 2 || kdc.preauthRequired != 1 {
						t.Fatalf("%d hosts: the KDC saw %+v, connect logged %s; want 1 AS exchange (2 AS-REQs, 1 PREAUTH_REQUIRED)", len(hs), kdc, own[0])
					}
					t.Logf("BENCH round %d kerberos %2d hosts: KDC (tshark) saw %d AS-REQ (%d answered PREAUTH_REQUIRED), %d TGS-REQ; connect: %s; TGS exchanges %s",
						round+1, len(hs), kdc.asReqs, kdc.preauthRequired, kdc.tgsReqs, own[0], tgsTimes(r.stderr))
					if len(hs) == benchHosts {
						bulkKDC = append(bulkKDC, kdc)
						bulkLog = append(bulkLog, own[0])
					}
				}
				t.Logf("BENCH round %d %-8s %2d hosts: wall %v, time to Running %s; authenticate median %v", round+1, auth, len(hs), r.took.Round(time.Millisecond), stats(took), median(logon).Round(time.Millisecond))
			}
		}
	}
	t.Logf("BENCH load average after the runs: %s", testutil.LoadAvg())
	for _, n := range []int{1, benchHosts} {
		k, nt := res[key("kerberos", n)], res[key("ntlm", n)]
		km, nm := median(k.took), median(nt.took)
		t.Logf("BENCH %2d host(s), %d rounds: kerberos time to Running %s, wall median %v; authenticate %s", n, rounds, stats(k.took), median(k.walls).Round(time.Millisecond), stats(k.logon))
		t.Logf("BENCH %2d host(s), %d rounds: ntlm     time to Running %s, wall median %v; authenticate %s", n, rounds, stats(nt.took), median(nt.walls).Round(time.Millisecond), stats(nt.logon))
		t.Logf("BENCH %2d host(s): ratio kerberos/ntlm median time to Running %.2f, wall %.2f", n, float64(km)/float64(nm), float64(median(k.walls))/float64(median(nt.walls)))
	}
	for i, c := range bulkKDC {
		t.Logf("BENCH %d-host Kerberos run %d: the KDC received %d AS-REQ (1 AS exchange: %d refused PREAUTH_REQUIRED, then 1 with PA-ENC-TIMESTAMP) and %d TGS-REQ; connect logged %s",
			benchHosts, i+1, c.asReqs, c.preauthRequired, c.tgsReqs, bulkLog[i])
	}
}

// kdcTraffic matches connect's closing log line about its KDC traffic.
var kdcTraffic = regexp.MustCompile(`kerberos KDC traffic" as_exchanges=(\d+) as_reqs=(\d+) tgs_reqs=(\d+)`)

// tgsTook matches the cache's debug line of each TGS exchange.
var tgsTook = regexp.MustCompile(`msg="krb service ticket" .* took=(\S+)`)

// tgsTimes sums up the TGS exchanges that connect's debug log (-v)
// reports: how many, their total and the longest.
func tgsTimes(stderr string) string {
	var ds []time.Duration
	var sum time.Duration
	for _, m := range tgsTook.FindAllStringSubmatch(stderr, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			ds = append(ds, d)
			sum += d
		}
	}
	if len(ds) == 0 {
		return "not logged"
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return fmt.Sprintf("%d, total %v, longest %v", len(ds), sum.Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}

// kdcCount is what a capture at the KDC saw from the client.
type kdcCount struct {
	asReqs, tgsReqs int // KRB_AS_REQ and KRB_TGS_REQ received
	preauthRequired int // KRB-ERRORs KDC_ERR_PREAUTH_REQUIRED (25) sent
}

// startKDCCapture runs dumpcap in the DC's namespace on TCP port 88 to or
// from client, writing pcap, and returns once dumpcap captures; the
// returned function stops it (dumpcap flushes the file on SIGTERM).
func startKDCCapture(ctx context.Context, t *testing.T, dc *testlab.DC, client, pcap string) func() {
	t.Helper()
	p, err := dc.Start(ctx, "dumpcap", "-q", "-i", "eth0", "-f", "tcp port 88 and host "+client, "-w", pcap)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(p.LogPath())
		if strings.Contains(string(b), "Capturing on") {
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Stop()
			t.Fatalf("dumpcap did not start capturing; its output:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() { p.Stop() }
}

// countKDC reads pcap with tshark and counts the Kerberos messages that
// client sent to the KDC, and the PREAUTH_REQUIRED errors it got back.
func countKDC(ctx context.Context, t *testing.T, pcap, client string) kdcCount {
	t.Helper()
	cmd := exec.CommandContext(ctx, "tshark", "-r", pcap, "-Y", "kerberos", "-T", "fields", "-E", "separator=;",
		"-e", "ip.src", "-e", "kerberos.msg_type", "-e", "kerberos.error_code")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", pcap, err, stderr.String())
	}
	var c kdcCount
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ";")
		if len(f) < 3 {
			continue
		}
		// One frame may carry several messages: tshark lists their
		// fields comma-separated.
		for _, mt := range strings.Split(f[1], ",") {
			switch {
			case f[0] == client && mt == "10":
				c.asReqs++
			case f[0] == client && mt == "12":
				c.tgsReqs++
			}
		}
		if f[0] != client {
			for _, code := range strings.Split(f[2], ",") {
				if code == "25" {
					c.preauthRequired++
				}
			}
		}
	}
	return c
}

// stats formats the median, p95 and maximum of ds (median and p95 are
// bench_bulk_lab_test.go's).
func stats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("median %v, p95 %v, max %v (%d samples)", median(ds).Round(time.Millisecond), p95(ds).Round(time.Millisecond), slices.Max(ds).Round(time.Millisecond), len(ds))
}
