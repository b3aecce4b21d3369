package adauth

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// With Directory.LAPS, the listing reports which LAPS password the bind
// account may read, never the password; SearchOne reads one object.
func TestDirectoryLAPSLab(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	if err := testlab.AvailableDC(); err != nil {
		t.Skip(err)
	}
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{LAPS: true}})
	dc := lab.DC
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const secret = "lanscan-never-shows-this-7f3a"
	set := map[string]map[string][]byte{
		"LPLEG":  {"ms-Mcs-AdmPwd": []byte(secret), "ms-Mcs-AdmPwdExpirationTime": []byte("134000000000000000")},
		"LPWIN":  {"msLAPS-Password": []byte(`{"n":"Administrator","t":"1d9f","p":"` + secret + `"}`), "msLAPS-PasswordExpirationTime": []byte("134000000000000000")},
		"LPENC":  {"msLAPS-EncryptedPassword": []byte("\x01\x02" + secret), "msLAPS-PasswordExpirationTime": []byte("134000000000000000")},
		"LPNONE": {},
	}
	for name, attrs := range set {
		if _, err := dc.SetLAPS(ctx, name, attrs); err != nil {
			t.Fatalf("SetLAPS %s: %v", name, err)
		}
	}
	dir := func(acct testlab.Account) *Directory {
		cr, err := Parse(dc.Domain+`\`+acct.User, acct.Password)
		if err != nil {
			t.Fatal(err)
		}
		return &Directory{URL: (&labDC{DC: dc}).ldapsURL(), ServerName: dc.Hostname, RootCAs: dc.CAPool,
			Credentials: cr, SkipResolve: true, BaseDN: dc.LAPS.OU, LAPS: true}
	}
	for acct, want := range map[testlab.Account]map[string]string{
		dc.LAPS.Reader: {"LPLEG": "legacy", "LPWIN": "windows", "LPENC": "windows-encrypted", "LPNONE": ""},
		dc.LAPS.Denied: {"LPLEG": "", "LPWIN": "", "LPENC": "", "LPNONE": ""},
	} {
		hosts, err := collect(t, ctx, dir(acct))
		if err != nil {
			t.Fatalf("%s: %v", acct.User, err)
		}
		got := map[string]string{}
		for _, h := range hosts {
			got[strings.ToUpper(h.Name)] = h.LAPS
			if strings.Contains(fmt.Sprintf("%+v", h), secret) {
				t.Fatalf("the password is in the host: %+v", h)
			}
		}
		for name, f := range want {
			if v, ok := got[name]; !ok || v != f {
				t.Errorf("%s: %s has laps %q (listed %v), want %q", acct.User, name, v, ok, f)
			}
		}
	}

	// SearchOne: by name below the domain, by DN, and nothing.
	d := dir(dc.LAPS.Reader)
	e, err := d.SearchOne(ctx, "", "(sAMAccountName=LPLEG$)", []string{"ms-Mcs-AdmPwd"})
	if err != nil || e == nil || !strings.HasPrefix(strings.ToUpper(e.DN), "CN=LPLEG,") || string(e.Attributes["ms-Mcs-AdmPwd"][0]) != secret {
		t.Fatalf("SearchOne by name: %v, %v", e != nil, err)
	}
	if e2, err := d.SearchOne(ctx, e.DN, "", []string{"sAMAccountName"}); err != nil || e2 == nil || e2.DN != e.DN {
		t.Fatalf("SearchOne by DN: %v %v", e2, err)
	}
	if e3, err := d.SearchOne(ctx, "", "(sAMAccountName=NOSUCH$)", nil); err != nil || e3 != nil {
		t.Fatalf("SearchOne of nothing: %v %v", e3, err)
	}
	if _, err := d.SearchOne(ctx, "", "(sAMAccountName=LP*)", nil); err == nil {
		t.Fatal("SearchOne of several objects: no error")
	}
}
