package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/internal/testutil"
)

// The browser test: the console runs in this process, in the root
// namespace, with the lab's /24 as its only TARGET; Debian's chromium,
// headless, drives the page the way a technician does.

func goBuild(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// serveSCM runs winemu (the SCM that Samba lacks) in tgt's namespace, with
// ADMIN$ as its Windows directory, and makes files copied to ADMIN$
// executable, as an .exe is on Windows. It returns winemu's control socket.
func serveSCM(ctx context.Context, t *testing.T, tgt *testlab.Target, winemu string) string {
	t.Helper()
	conf, err := os.ReadFile(tgt.SMBConf)
	if err != nil {
		t.Fatal(err)
	}
	exe := strings.Replace(string(conf), "[ADMIN$]\n", "[ADMIN$]\n\tforce create mode = 0755\n", 1)
	if exe == string(conf) {
		t.Fatal("no [ADMIN$] section in the target's smb.conf")
	}
	if err := os.WriteFile(tgt.SMBConf, []byte(exe), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WINEMU_PASSWORD", tgt.Admin.Password)
	ctl := filepath.Join(t.TempDir(), "winemu.ctl")
	p, err := tgt.Start(ctx, winemu, "-listen", tgt.Addr.String(), "-root", tgt.AdminDir, "-control", ctl,
		"-user", tgt.Admin.User, "-name", tgt.NetBIOSName, "-workgroup", tgt.Workgroup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	addr := net.JoinHostPort(tgt.Addr.String(), "135")
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return ctl
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("winemu is not listening on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// winemuServices asks winemu which services exist.
func winemuServices(t *testing.T, ctl string) []string {
	t.Helper()
	c, err := net.Dial("unix", ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "services")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ok") {
		t.Fatalf("winemu control: %q %v", line, err)
	}
	return strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "ok"))
}

func appletFiles(tgt *testlab.Target) []string {
	var out []string
	filepath.WalkDir(tgt.AdminDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(strings.ToLower(d.Name()), "lcapplet") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestLabBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	chromium := chromiumPath(t)
	bins := t.TempDir()
	winemu := goBuild(t, bins, "winemu", "github.com/lanconnect/lanconnect/internal/winemu/cmd/winemu")
	applet := goBuild(t, bins, "applet", "github.com/lanconnect/lanconnect/examples/applet")

	lab := testlab.New(t, testlab.Options{Targets: make([]testlab.TargetSpec, 2)})
	tgt := lab.Targets[0]
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ctl := serveSCM(ctx, t, tgt, winemu)

	// The console, tried first with the target's ordinary (non-admin)
	// account, as a technician whose default account is not enough.
	logs := &testutil.LockedBuffer{}
	urlc := make(chan string, 1)
	cctx, stopConsole := context.WithCancel(ctx)
	exited := make(chan int, 1)
	go func() {
		exited <- run(cctx, []string{
			"-listen", "127.0.0.1:0", "-console", net.JoinHostPort(lab.HostAddr.String(), "0"),
			"-applet", applet, "-user", tgt.User.User, "-checkin-timeout", "60s", "-v",
			lab.Prefix.String(),
		}, env{
			stdin: strings.NewReader(""), stdout: logs, stderr: logs,
			getenv: func(k string) string {
				if k == passwordEnv {
					return tgt.User.Password
				}
				return ""
			},
			listening: func(u string) { urlc <- u },
		})
	}()
	var url string
	select {
	case url = <-urlc:
	case code := <-exited:
		t.Fatalf("console exited with %d:\n%s", code, logs.String())
	case <-ctx.Done():
		t.Fatal("console did not start")
	}
	defer func() {
		stopConsole()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("console exited with %d", code)
			}
		case <-time.After(3 * time.Minute):
			t.Error("console did not stop")
		}
		for _, pw := range []string{tgt.User.Password, tgt.Admin.Password} {
			if strings.Contains(logs.String(), pw) {
				t.Error("a password appears in the console's output")
			}
		}
		if t.Failed() {
			t.Logf("console output:\n%s", logs.String())
		}
	}()

	b := newBrowser(ctx, t, chromium)
	do, poll, text, shot, rowNames := b.do, b.poll, b.text, b.shot, b.rowNames

	// 1. The list fills with the lab's targets.
	do("open the page", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`#filter`)))
	t0 := time.Now()
	poll("the list fills", fmt.Sprintf(`document.querySelectorAll("#hosts tr").length === %d`, len(lab.Targets)), time.Minute)
	t.Logf("list filled with %d targets %v after the page loaded", len(lab.Targets), time.Since(t0).Round(time.Millisecond))
	names := rowNames()
	for _, lt := range lab.Targets {
		if !strings.Contains(strings.Join(names, " "), lt.NetBIOSName) {
			t.Fatalf("rows %v lack %s", names, lt.NetBIOSName)
		}
	}
	if count := text(`#count`); count != fmt.Sprintf("%d computers", len(lab.Targets)) {
		t.Fatalf("count %q", count)
	}
	shot("list")
	poll("the scan ends", `document.getElementById("scanning").hidden`, time.Minute)
	t.Logf("scan of %s over %v after the page loaded", lab.Prefix, time.Since(t0).Round(time.Millisecond))

	// 2. Typing a filter narrows the rows.
	do("type the filter", chromedp.SendKeys(chromedp.CSS(`#filter`), tgt.NetBIOSName))
	poll("the filter narrows the rows", `document.querySelectorAll("#hosts tr").length === 1`, 20*time.Second)
	if names := rowNames(); len(names) != 1 || names[0] != tgt.NetBIOSName {
		t.Fatalf("filtered rows %v", names)
	}
	shot("filtered")

	// 3. Connect as the non-admin account: the dialog opens with the
	// diagnosis.
	do("connect", chromedp.Click(chromedp.CSS(`#hosts tr button.connect`)), chromedp.WaitVisible(chromedp.CSS(`#prompt-account`)))
	if reason, host := text(`#prompt-reason`), text(`#prompt-host`); !strings.Contains(reason, "not an administrator") || host != tgt.NetBIOSName {
		t.Fatalf("dialog for %q says %q", host, reason)
	}
	shot("prompt")

	// 4. The lab's admin credentials: the session reaches Running.
	do("answer", chromedp.SendKeys(chromedp.CSS(`#prompt-account`), tgt.Admin.User),
		chromedp.SendKeys(chromedp.CSS(`#prompt-password`), tgt.Admin.Password),
		chromedp.Click(chromedp.CSS(`#prompt-ok`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#prompt-account`)))
	if pw, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS(`#prompt-password`))); err != nil || pw != "" {
		t.Fatalf("the password field is not empty after the answer (%v)", err)
	}
	t1 := time.Now()
	poll("Running", `!!document.querySelector('#sessions li[data-state="Running"]')`, 2*time.Minute)
	t.Logf("Running %v after the credentials", time.Since(t1).Round(time.Millisecond))
	if panel := text(`#sessions`); !strings.Contains(panel, tgt.NetBIOSName) || !strings.Contains(panel, "scm") {
		t.Fatalf("sessions panel: %q", panel)
	}
	png := shot("running")
	if *updateScreenshot {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(appletFiles(tgt)) == 0 {
		t.Fatal("Running, but no applet on the target")
	}

	// 5. Close: the session is Closed and nothing is left on the target.
	do("close", chromedp.Click(chromedp.CSS(`#sessions li[data-state="Running"] button.close`)))
	poll("Closed", `!!document.querySelector('#sessions li[data-state="Closed"]')`, 2*time.Minute)
	if panel := text(`#sessions`); !strings.Contains(panel, "nothing left") {
		t.Fatalf("sessions panel after Close: %q", panel)
	}
	shot("closed")
	if f := appletFiles(tgt); len(f) != 0 {
		t.Fatalf("left on the target: %v", f)
	}
	if s := winemuServices(t, ctl); len(s) != 0 {
		t.Fatalf("services left: %v", s)
	}
}
