package testlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// smbclient runs smbclient against a target share with the account's
// password in the PASSWD environment variable (never on the command line).
func smbclient(ctx context.Context, t *testing.T, share string, a Account, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{share, "-U", a.User, "--option=client min protocol=SMB2"}, extra...)
	cmd := exec.CommandContext(ctx, "smbclient", args...)
	cmd.Env = append(os.Environ(), "PASSWD="+a.Password)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// whoami asks the target's LSA who the session is (lsa_GetUserName), with
// SMB signing off so that a guest session (which cannot sign) gets through.
func whoami(ctx context.Context, addr netip.Addr, a Account) (string, error) {
	cmd := exec.CommandContext(ctx, "rpcclient", "--option=client ipc signing=off", "--option=client signing=off",
		"-U", a.User, addr.String(), "-c", "getusername")
	cmd.Env = append(os.Environ(), "PASSWD="+a.Password)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestTargets(t *testing.T) {
	lab := New(t, Options{Targets: []TargetSpec{{}, {}, {Variant: GuestOnly}, {Variant: NTLMDisabled}, {Variant: SigningMandatory}, {Variant: EncryptRequired}, {NoSMB: true}, {NoNmbd: true}}})
	t.Log("\n" + lab.String())
	if !lab.Prefix.Addr().Is4() || lab.Prefix.Bits() != 24 || !netip.MustParsePrefix("10.0.0.0/8").Overlaps(lab.Prefix) {
		t.Fatalf("prefix %v is not a /24 in 10.0.0.0/8", lab.Prefix)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, tg := range lab.Targets {
		t.Run(tg.NetBIOSName+"-"+tg.Variant.String(), func(t *testing.T) {
			// NBSTAT, with Samba's own client (from the root namespace
			// over the bridge).
			var out string
			var err error
			if tg.NoNmbd {
				// One query, as Start's probe sends: no answer within
				// 2 s (nmblookup would retry for 15 s).
				pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
				err = waitNBSTAT(pctx, nil, tg.Addr, "nmbd")
				pcancel()
				if err == nil {
					t.Errorf("NoNmbd target answers NBSTAT")
				}
			} else {
				b, err := exec.CommandContext(ctx, "nmblookup", "-A", tg.Addr.String()).CombinedOutput()
				out = string(b)
				if err != nil {
					t.Fatalf("nmblookup -A %s: %v\n%s", tg.Addr, err, out)
				}
				for _, want := range []string{tg.NetBIOSName + " ", tg.Workgroup + " "} {
					if !strings.Contains(out, want) {
						t.Errorf("NBSTAT of %s lacks %q:\n%s", tg.Addr, want, out)
					}
				}
			}
			if tg.NoSMB {
				c, err := net.DialTimeout("tcp", netip.AddrPortFrom(tg.Addr, 445).String(), time.Second)
				if err == nil {
					c.Close()
					t.Fatalf("NoSMB target accepts TCP 445")
				}
				return
			}
			admin := fmt.Sprintf("//%s/ADMIN$", tg.Addr)
			name := "lab-test.txt"
			local := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(local, []byte("hello from the lab test\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			put := []string{"-c", fmt.Sprintf("lcd %s; put %s Temp\\%s", filepath.Dir(local), name, name)}
			switch tg.Variant {
			case GuestOnly:
				// Even the admin's valid credentials give a guest
				// session (unsigned, so signing is turned off here),
				// which ADMIN$ refuses.
				who, err := whoami(ctx, tg.Addr, tg.Admin)
				if err != nil {
					t.Fatalf("guest-only logon: %v\n%s", err, who)
				}
				if strings.Contains(who, tg.Admin.User) || !strings.Contains(who, "Anonymous") {
					t.Errorf("guest-only target: admin logon is not a guest session: %s", who)
				}
				if out, err := smbclient(ctx, t, admin, tg.Admin, put...); err == nil {
					t.Fatalf("guest session wrote ADMIN$:\n%s", out)
				}
				return
			case NTLMDisabled:
				out, err := smbclient(ctx, t, admin, tg.Admin, put...)
				if err == nil || !strings.Contains(out, "NT_STATUS_NTLM_BLOCKED") {
					t.Fatalf("NTLM-disabled target: want NT_STATUS_NTLM_BLOCKED, got %v\n%s", err, out)
				}
				return
			}
			var extra []string
			switch tg.Variant {
			case SigningMandatory:
				extra = []string{"--client-protection=sign"}
			case EncryptRequired:
				extra = []string{"--client-protection=encrypt"}
			}
			out, err = smbclient(ctx, t, admin, tg.Admin, append(extra, put...)...)
			if err != nil {
				t.Fatalf("admin put to ADMIN$: %v\n%s", err, out)
			}
			got, err := os.ReadFile(filepath.Join(tg.AdminDir, "Temp", name))
			if err != nil || string(got) != "hello from the lab test\n" {
				t.Fatalf("file in AdminDir: %q, %v", got, err)
			}
			if tg.Variant == Standard {
				who, err := whoami(ctx, tg.Addr, tg.Admin)
				if err != nil || !strings.Contains(who, "Account Name: "+tg.Admin.User+",") {
					t.Errorf("standard target: admin logon: %v: %s", err, who)
				}
			}
			out, err = smbclient(ctx, t, admin, tg.User, append(extra, put...)...)
			if err == nil || !strings.Contains(out, "NT_STATUS_ACCESS_DENIED") {
				t.Fatalf("non-admin on ADMIN$: want NT_STATUS_ACCESS_DENIED, got %v\n%s", err, out)
			}
			out, err = smbclient(ctx, t, fmt.Sprintf("//%s/IPC$", tg.Addr), tg.User, append(extra, "-c", "exit")...)
			if err != nil {
				t.Fatalf("non-admin logon to IPC$: %v\n%s", err, out)
			}
			bad := tg.Admin
			bad.Password += "x"
			out, err = smbclient(ctx, t, admin, bad, append(extra, put...)...)
			if err == nil || !strings.Contains(out, "NT_STATUS_LOGON_FAILURE") {
				t.Fatalf("wrong password: want NT_STATUS_LOGON_FAILURE, got %v\n%s", err, out)
			}
		})
	}

	// StopSMB closes 445 (and leaves no samba-dcerpcd behind); StartSMB
	// opens it again.
	tg := lab.Targets[0]
	if err := tg.StopSMB(); err != nil {
		t.Fatalf("StopSMB: %v", err)
	}
	if c, err := net.DialTimeout("tcp", netip.AddrPortFrom(tg.Addr, 445).String(), time.Second); err == nil {
		c.Close()
		t.Fatalf("445 still open after StopSMB")
	}
	for _, pid := range netnsPids(ctx, tg.Name) {
		if c := procComm(pid); c != "nmbd" {
			t.Errorf("process %d (%s) left in %s after StopSMB", pid, c, tg.Name)
		}
	}
	if err := tg.StartSMB(); err != nil {
		t.Fatalf("StartSMB: %v", err)
	}
	if out, err := smbclient(ctx, t, fmt.Sprintf("//%s/IPC$", tg.Addr), tg.Admin, "-c", "exit"); err != nil {
		t.Fatalf("logon after StartSMB: %v\n%s", err, out)
	}

	for _, tg := range lab.Targets {
		if tg.NoSMB {
			if err := tg.StopSMB(); !errors.Is(err, ErrNoSMB) {
				t.Errorf("StopSMB on a NoSMB target: %v, want ErrNoSMB", err)
			}
		}
		if tg.NoNmbd {
			if err := tg.StopNmbd(); !errors.Is(err, ErrNoNmbd) {
				t.Errorf("StopNmbd on a NoNmbd target: %v, want ErrNoNmbd", err)
			}
		}
	}
	// StopNmbd: the target no longer answers NBSTAT, and SMB stays up.
	if err := tg.StopNmbd(); err != nil {
		t.Fatalf("StopNmbd: %v", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	if err := waitNBSTAT(pctx, nil, tg.Addr, "nmbd"); err == nil {
		t.Errorf("nmbd still answers NBSTAT after StopNmbd")
	}
	pcancel()
	if out, err := smbclient(ctx, t, fmt.Sprintf("//%s/IPC$", tg.Addr), tg.Admin, "-c", "exit"); err != nil {
		t.Errorf("SMB down after StopNmbd: %v\n%s", err, out)
	}

	// Close removes everything and is idempotent.
	st := lab.state
	if err := lab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	t.Logf("lab %s: %s", lab.ID, lab.Timings())
	assertGone(t, &st)
}

// assertGone checks that nothing the state records is left.
func assertGone(t *testing.T, st *State) {
	t.Helper()
	for _, ns := range st.Netns {
		if nsExists(ns) {
			t.Errorf("namespace %s left", ns)
		}
		if _, err := os.Stat(filepath.Join("/etc/netns", ns)); err == nil {
			t.Errorf("/etc/netns/%s left", ns)
		}
	}
	for _, l := range append(st.Links, st.Bridge) {
		if linkExists(l) {
			t.Errorf("link %s left", l)
		}
	}
	for _, u := range st.Users {
		if userExists(u) {
			t.Errorf("user %s left", u)
		}
	}
	for _, g := range st.Groups {
		if groupExists(g) {
			t.Errorf("group %s left", g)
		}
	}
	for _, pid := range st.PIDs {
		if alive(pid) {
			t.Errorf("process %d (%s) left", pid, procComm(pid))
		}
	}
	if procs := procsMentioning(st.Dir); len(procs) > 0 {
		t.Errorf("processes mentioning %s left: %v", st.Dir, procs)
	}
	if _, err := os.Stat(st.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir %s left (%v)", st.Dir, err)
	}
	if _, err := os.Stat(StatePath(st.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left (%v)", err)
	}
}

// procsMentioning lists processes whose command line contains s.
func procsMentioning(s string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, e.Name()+":"+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
