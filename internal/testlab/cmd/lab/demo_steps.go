package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// The demo's example steps: lanscan from the client namespace (NetBIOS
// with default targets, then the DC over LDAPS), and connect to one
// target by its NetBIOS name, through winemu's SCM next to its Samba.

func init() {
	for i := range demoSteps {
		switch demoSteps[i].Name {
		case "lanscan":
			demoSteps[i].Run = demoLanscan
		case "lanscan-ad":
			demoSteps[i].Run = demoLanscanAD
		case "connect-check":
			demoSteps[i].Run = demoConnectCheck
		case "connect":
			demoSteps[i].Run = demoConnect
		}
	}
}

// demoBins builds the example binaries once per demo.
var demoBins = struct {
	once sync.Once
	dir  string
	err  error
}{}

func demoBin(ctx context.Context, name string) (string, error) {
	demoBins.once.Do(func() {
		dir, err := os.MkdirTemp("", "lanconnect-demo-")
		if err != nil {
			demoBins.err = err
			return
		}
		demoBins.dir = dir
		fmt.Println("   building the examples...")
		for _, b := range []struct{ name, pkg string }{
			{"lanscan", "github.com/lanconnect/lanconnect/examples/lanscan"},
			{"connect", "github.com/lanconnect/lanconnect/examples/connect"},
			{"applet.exe", "github.com/lanconnect/lanconnect/examples/applet"},
			{"winemu", "github.com/lanconnect/lanconnect/internal/winemu/cmd/winemu"},
		} {
			cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, b.name), b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				demoBins.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if demoBins.err != nil {
		return "", demoBins.err
	}
	return filepath.Join(demoBins.dir, name), nil
}

// runIn runs a binary in the lab's client namespace with its output on
// ours, indented.
func runIn(ctx context.Context, ns *testlab.Netns, env []string, bin string, args ...string) error {
	if ns == nil {
		return fmt.Errorf("the demo lab has no client namespace")
	}
	cmd := ns.Command(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	w := &indentWriter{w: os.Stdout}
	cmd.Stdout, cmd.Stderr = w, w
	fmt.Printf("   $ %s %s\n", filepath.Base(bin), strings.Join(args, " "))
	return cmd.Run()
}

// indentWriter prefixes each line with five spaces.
type indentWriter struct {
	mu  sync.Mutex
	w   *os.File
	mid bool
}

func (in *indentWriter) Write(p []byte) (int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	var b []byte
	for _, c := range p {
		if !in.mid {
			b = append(b, "     "...)
		}
		b = append(b, c)
		in.mid = c != '\n' && c != '\r'
	}
	_, err := in.w.Write(b)
	return len(p), err
}

func demoLanscan(ctx context.Context, l *testlab.Lab) error {
	bin, err := demoBin(ctx, "lanscan")
	if err != nil {
		return err
	}
	return runIn(ctx, l.Client, nil, bin)
}

func demoLanscanAD(ctx context.Context, l *testlab.Lab) error {
	if l.DC == nil {
		return fmt.Errorf("the demo lab has no DC")
	}
	bin, err := demoBin(ctx, "lanscan")
	if err != nil {
		return err
	}
	return runIn(ctx, l.Client, []string{"LANCONNECT_PASSWORD=" + l.DC.Admin.Password}, bin,
		"-ldap", "ldaps://"+l.DC.Addr.String(), "-ldap-ca", l.DC.CAFile, "-ldap-server-name", l.DC.Hostname,
		"-user", l.DC.Domain+`\`+l.DC.Admin.User, "-filter", "*0")
}

// demoConnectCheck runs connect -check on the first target (ready) and
// the Guest-only one (not ready: every logon becomes Guest) with the first
// target's admin account. connect exits 1 because one host is not ready,
// which is what the step shows; any other outcome fails it.
func demoConnectCheck(ctx context.Context, l *testlab.Lab) error {
	tgt := l.Targets[0]
	var guest *testlab.Target
	for _, t := range l.Targets {
		if t.Variant == testlab.GuestOnly {
			guest = t
		}
	}
	if guest == nil {
		return fmt.Errorf("the demo lab has no Guest-only target")
	}
	connect, err := demoBin(ctx, "connect")
	if err != nil {
		return err
	}
	err = runIn(ctx, l.Client, []string{"LANCONNECT_PASSWORD=" + tgt.Admin.Password}, connect,
		"-check", "-user", tgt.Admin.User, tgt.NetBIOSName, guest.NetBIOSName)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		fmt.Printf("   exit 1: %s is not ready (Guest-only sharing model), as expected\n", guest.NetBIOSName)
		return nil
	}
	if err == nil {
		return fmt.Errorf("connect -check said every host is ready, but %s is Guest-only", guest.NetBIOSName)
	}
	return err
}

func demoConnect(ctx context.Context, l *testlab.Lab) error {
	tgt := l.Targets[0]
	emu, err := demoBin(ctx, "winemu")
	if err != nil {
		return err
	}
	connect, _ := demoBin(ctx, "connect")
	applet, _ := demoBin(ctx, "applet.exe")
	defer os.RemoveAll(demoBins.dir) // the last step: the binaries go
	// winemu plays the target's Service Control Manager on TCP 135 and a
	// dynamic port; the password reaches it through its environment.
	os.Setenv("WINEMU_PASSWORD", tgt.Admin.Password)
	p, err := tgt.Start(ctx, emu, "-listen", tgt.Addr.String(), "-root", tgt.AdminDir,
		"-user", tgt.Admin.User, "-name", tgt.NetBIOSName, "-workgroup", tgt.Workgroup)
	os.Unsetenv("WINEMU_PASSWORD")
	if err != nil {
		return err
	}
	defer p.Stop()
	addr := net.JoinHostPort(tgt.Addr.String(), "135")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || p.Exited() {
			return fmt.Errorf("winemu not listening on %s: %v", addr, err)
		}
	}
	fmt.Printf("   winemu serves the SCM of %s (%s); connect runs in the client namespace and checks in at %s\n",
		tgt.NetBIOSName, tgt.Addr, l.Client.Addr)
	return runIn(ctx, l.Client, []string{"LANCONNECT_PASSWORD=" + tgt.Admin.Password}, connect,
		"-user", tgt.Admin.User, "-applet", applet, "-console", net.JoinHostPort(l.Client.Addr.String(), "0"), tgt.NetBIOSName)
}
