package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

var smbclientRate = regexp.MustCompile(`\((\d+(?:\.\d+)?) kb/s\)`)

// TestCopyBench compares Copy with `smbclient -c put` on the same lab
// target in one run, and times authentication with the admin proof. It
// runs only with LANCONNECT_BENCH_COPY=1 (see scripts/bench-copy.sh):
//
//	LANCONNECT_BENCH_MB      file size in MiB (default 50)
//	LANCONNECT_BENCH_ROUNDS  rounds of each copy (default 5)
//	LANCONNECT_BENCH_AUTH    authentications to time (default 20)
//	LANCONNECT_BENCH_PARALLEL  Copy's writes in flight (default: Copy's)
//
// Both clients sign every message (smbclient --client-protection=sign;
// Copy always does). Each round writes a new file name, deleted afterwards.
func TestCopyBench(t *testing.T) {
	if os.Getenv("LANCONNECT_BENCH_COPY") != "1" {
		t.Skip("set LANCONNECT_BENCH_COPY=1 (scripts/bench-copy.sh)")
	}
	smbclient, err := exec.LookPath("smbclient")
	if err != nil {
		t.Skip("smbclient not installed")
	}
	mb, rounds, auths := envInt("LANCONNECT_BENCH_MB", 50), envInt("LANCONNECT_BENCH_ROUNDS", 5), envInt("LANCONNECT_BENCH_AUTH", 20)
	parallel := envInt("LANCONNECT_BENCH_PARALLEL", 0)
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{{}}})
	tg := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	dir := t.TempDir()
	local := filepath.Join(dir, "bench.bin")
	if err := os.WriteFile(local, randomBytes(t, mb<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	applet, err := AppletFromFile("bench.bin", "bench", local)
	if err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(dir, "auth")
	if err := os.WriteFile(authFile, []byte("username = "+tg.Admin.User+"\npassword = "+tg.Admin.Password+"\ndomain = "+tg.Workgroup+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	remoteDir := filepath.Join(tg.AdminDir, "lc-bench")
	if err := os.MkdirAll(remoteDir, 0o777); err != nil {
		t.Fatal(err)
	}
	g := grantFor(t, ctx, tg, adauth.EncryptIfServerAsks)
	ge := grantFor(t, ctx, tg, adauth.EncryptPreferred) // the default
	if !ge.Facts.Encrypted || g.Facts.Encrypted {
		t.Fatalf("signed %+v, encrypted %+v", g.Facts, ge.Facts)
	}
	size := float64(int64(mb) << 20)
	mbps := func(d time.Duration) float64 { return size / d.Seconds() / 1e6 }

	copyOnce := func(g *adauth.Grant, name string) time.Duration {
		// A fresh name each time (each copy makes a folder of its own).
		a := applet
		a.Name = name
		res, err := Copy(ctx, g, a, CopyOptions{Parallel: parallel})
		if err != nil {
			t.Fatal(err)
		}
		_ = os.RemoveAll(filepath.Join(tg.AdminDir, res.Folder))
		return res.Took
	}
	var ours, oursEnc, theirsWall, theirsPut []time.Duration
	for r := range rounds {
		took := copyOnce(g, fmt.Sprintf("ours-%d.bin", r))
		ours = append(ours, took)
		tookEnc := copyOnce(ge, fmt.Sprintf("ours-enc-%d.bin", r))
		oursEnc = append(oursEnc, tookEnc)

		// smbclient: connect, log on, put, all in one process.
		name := fmt.Sprintf("smbclient-%d.bin", r)
		args := []string{"//" + tg.Addr.String() + "/ADMIN$", "-A", authFile, "-m", "SMB3", "--client-protection=sign"}
		if extra := os.Getenv("LANCONNECT_BENCH_SMBCLIENT_OPTION"); extra != "" {
			args = append(args, "--option="+extra)
		}
		args = append(args, "-c", `put "`+local+`" "lc-bench\`+name+`"`)
		cmd := exec.CommandContext(ctx, smbclient, args...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		wall := time.Since(start)
		if err != nil {
			t.Fatalf("smbclient: %v: %s", err, out)
		}
		theirsWall = append(theirsWall, wall)
		if m := smbclientRate.FindSubmatch(out); m != nil {
			kbs, _ := strconv.ParseFloat(string(m[1]), 64)
			// smbclient's kb/s is KiB/s of the put alone.
			theirsPut = append(theirsPut, time.Duration(size/(kbs*1024)*float64(time.Second)))
		}
		st, err := os.Stat(filepath.Join(remoteDir, name))
		if err != nil || st.Size() != int64(mb)<<20 {
			t.Fatalf("smbclient's file: %v", err)
		}
		_ = os.Remove(filepath.Join(remoteDir, name))
		t.Logf("round %d: ours signed %v (%.0f MB/s), ours encrypted %v (%.0f MB/s), smbclient wall %v (%.0f MB/s)", r,
			took.Round(time.Millisecond), mbps(took), tookEnc.Round(time.Millisecond), mbps(tookEnc), wall.Round(time.Millisecond), mbps(wall))
	}

	// Authenticate and prove admin, several times; the first one after
	// lab start pays samba-dcerpcd's spawn, so warm up once.
	c, _ := adauth.Parse(tg.Admin.User, tg.Admin.Password)
	var authT, logonT []time.Duration
	for i := range auths + 1 {
		start := time.Now()
		ag, err := (&adauth.SMBAuthenticator{}).Authenticate(ctx, tg.Addr.String(), c)
		d := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			authT = append(authT, d)
			logonT = append(logonT, ag.Facts.LogonTook)
		}
		_ = ag.Close()
	}

	mo, me, mw := median(ours), median(oursEnc), median(theirsWall)
	fmt.Printf("BENCH copy size=%dMiB rounds=%d parallel=%d (one lab target, interleaved rounds)\n", mb, rounds, max(parallel, DefaultParallel))
	fmt.Printf("BENCH ours signed (AES-CMAC)   median %v  %.1f MB/s\n", mo.Round(time.Millisecond), mbps(mo))
	fmt.Printf("BENCH ours encrypted (AES-GCM) median %v  %.1f MB/s\n", me.Round(time.Millisecond), mbps(me))
	fmt.Printf("BENCH smbclient put, signed    median %v  %.1f MB/s (wall: process start, logon and put)\n", mw.Round(time.Millisecond), mbps(mw))
	fmt.Printf("BENCH ratio ours/smbclient (wall): signed %.2fx, encrypted %.2fx\n", mw.Seconds()/mo.Seconds(), mw.Seconds()/me.Seconds())
	if len(theirsPut) == rounds {
		mp := median(theirsPut)
		fmt.Printf("BENCH smbclient put alone      median %v  %.1f MB/s (its own reported rate)\n", mp.Round(time.Millisecond), mbps(mp))
		fmt.Printf("BENCH ratio ours/smbclient (put alone): signed %.2fx, encrypted %.2fx\n", mp.Seconds()/mo.Seconds(), mp.Seconds()/me.Seconds())
	}
	fmt.Printf("BENCH auth+admin proof median of %d: %v (of which connect and logon %v; default settings: encrypted session)\n",
		len(authT), median(authT).Round(100*time.Microsecond), median(logonT).Round(100*time.Microsecond))
}
