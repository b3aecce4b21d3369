package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestLabLDAPLAPS runs lanscan -ldap against a DC with the LAPS schemas:
// as lapsreader, `laps` names each computer's readable format; as
// lapsdenied, it is absent; the password never appears.
func TestLabLDAPLAPS(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	if err := testlab.AvailableDC(); err != nil {
		t.Skip(err)
	}
	l := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{LAPS: true}})
	dc := l.DC
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const secret = "lanscan-laps-secret-91c"
	exp := []byte("134000000000000000")
	for name, attrs := range map[string]map[string][]byte{
		"SCANLEG":  {"ms-Mcs-AdmPwd": []byte(secret), "ms-Mcs-AdmPwdExpirationTime": exp},
		"SCANWIN":  {"msLAPS-Password": []byte(`{"n":"Administrator","t":"1d9f","p":"` + secret + `"}`), "msLAPS-PasswordExpirationTime": exp},
		"SCANENC":  {"msLAPS-EncryptedPassword": []byte("\x01\x02" + secret), "msLAPS-PasswordExpirationTime": exp},
		"SCANNONE": {},
	} {
		if _, err := dc.SetLAPS(ctx, name, attrs); err != nil {
			t.Fatalf("SetLAPS %s: %v", name, err)
		}
	}
	bin := filepath.Join(t.TempDir(), "lanscan")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for acct, want := range map[testlab.Account]map[string]string{
		dc.LAPS.Reader: {"SCANLEG": "legacy", "SCANWIN": "windows", "SCANENC": "windows-encrypted", "SCANNONE": ""},
		dc.LAPS.Denied: {"SCANLEG": "", "SCANWIN": "", "SCANENC": "", "SCANNONE": ""},
	} {
		cmd := exec.CommandContext(ctx, bin, "-json", "-ldap", "ldaps://"+dc.Addr.String(), "-ldap-server-name", dc.Hostname,
			"-ldap-ca", dc.CAFile, "-ldap-dns", dc.Addr.String(), "-ldap-base", dc.LAPS.OU,
			"-user", dc.Domain+`\`+acct.User, "-password-stdin", dc.Addr.String())
		cmd.Stdin = strings.NewReader(acct.Password + "\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("lanscan as %s: %v\n%s", acct.User, err, stderr.String())
		}
		if strings.Contains(stdout.String(), secret) || strings.Contains(stderr.String(), secret) {
			t.Fatalf("the LAPS password appears in lanscan's output as %s", acct.User)
		}
		got := map[string]string{}
		sc := bufio.NewScanner(&stdout)
		for sc.Scan() {
			var raw map[string]any
			if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
				t.Fatalf("%q: %v", sc.Text(), err)
			}
			name, _ := raw["name"].(string)
			v, has := raw["laps"].(string)
			if has && v == "" {
				t.Fatalf("empty laps field: %s", sc.Text())
			}
			got[strings.ToUpper(name)] = v
		}
		for name, f := range want {
			if v, ok := got[name]; !ok || v != f {
				t.Errorf("as %s: %s laps %q (listed %v), want %q", acct.User, name, v, ok, f)
			}
		}
	}
}
