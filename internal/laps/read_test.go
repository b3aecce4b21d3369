package laps

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/internal/winenc"
)

// fakeDir is a Searcher over fixed entries, keyed by sAMAccountName.
type fakeDir struct {
	entries map[string]*Entry
	filters []string
}

func (f *fakeDir) SearchOne(_ context.Context, base, filter string, attrs []string) (*Entry, error) {
	f.filters = append(f.filters, filter)
	for sam, e := range f.entries {
		if strings.Contains(strings.ToUpper(filter), "(SAMACCOUNTNAME="+sam+")") || (filter == "" && base == e.DN) {
			return e, nil
		}
	}
	return nil, nil
}

// rootKeySource answers GetKey from a root key for the SIDs it allows,
// as the DC does for a member of the group.
type rootKeySource struct {
	rk    *RootKey
	allow string
}

func (s rootKeySource) GetKey(_ context.Context, sd []byte, id GUID, l0, l1, l2 int32) (*GroupKeyEnvelope, error) {
	want, _ := TargetSD(s.allow)
	if string(sd) != string(want) {
		return nil, ErrDecryptionRefused
	}
	return s.rk.Envelope(sd, l0, l1, l2)
}

func TestReaderDiagnoses(t *testing.T) {
	rk := testRootKey(t)
	const group = "S-1-5-21-1-2-3-1120"
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	future, past := Filetime(now.Add(48*time.Hour)), Filetime(now.Add(-time.Hour))
	pt := winenc.EncodeUTF16LE(string(EncodeWindowsJSON("LapsAdmin", testSecret, now.Add(-time.Hour))))
	blob, err := Protect(rk, group, pt, ProtectOptions{Time: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	encrypted := EncodeEncrypted(now.Add(-time.Hour), blob)
	entry := func(name string, kv ...any) *Entry {
		e := &Entry{DN: "CN=" + name + ",OU=Lab", Attributes: map[string][][]byte{}}
		for i := 0; i < len(kv); i += 2 {
			v := kv[i+1]
			switch v := v.(type) {
			case string:
				e.Attributes[kv[i].(string)] = [][]byte{[]byte(v)}
			case []byte:
				e.Attributes[kv[i].(string)] = [][]byte{v}
			}
		}
		return e
	}
	dir := &fakeDir{entries: map[string]*Entry{
		"LEGACY$":   entry("LEGACY", "ms-mcs-admpwd", testSecret, "ms-Mcs-AdmPwdExpirationTime", future),
		"WINDOWS$":  entry("WINDOWS", AttrPassword, string(EncodeWindowsJSON("LapsAdmin", testSecret, now)), AttrExpiration, future),
		"ENC$":      entry("ENC", AttrEncryptedPassword, encrypted, AttrExpiration, future),
		"NONE$":     entry("NONE"),
		"HIDDEN$":   entry("HIDDEN", AttrExpiration, future),
		"HIDDENV1$": entry("HIDDENV1", AttrLegacyExpiration, future),
		"OLD$":      entry("OLD", AttrLegacyPassword, testSecret, AttrLegacyExpiration, past),
		"BAD$":      entry("BAD", AttrPassword, `{"n":"x","p":"`+testSecret),
	}}
	var logs testutil.LockedBuffer
	r := &Reader{Directory: dir, BaseDN: "DC=lab", Keys: rootKeySource{rk: rk, allow: group}, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx := context.Background()
	var errs []string
	for name, want := range map[string]Format{"legacy": Legacy, "windows": Windows, "enc": WindowsEncrypted} {
		p, err := r.ReadComputer(ctx, name+".lab.test")
		if err != nil || p.Format != want || p.Secret != testSecret || p.DN == "" {
			t.Fatalf("%s: %v %v", name, p, err)
		}
		if want != Legacy && p.Account != "LapsAdmin" {
			t.Fatalf("%s: account %q", name, p.Account)
		}
		if Present(dir.entries[strings.ToUpper(name)+"$"]) != want {
			t.Fatalf("Present(%s)", name)
		}
	}
	check := func(name string, target error, as any) {
		t.Helper()
		p, err := r.ReadComputer(ctx, name)
		if !errors.Is(err, target) {
			t.Fatalf("%s: %v, want %v", name, err, target)
		}
		if as != nil && !errors.As(err, as) {
			t.Fatalf("%s: %T", name, err)
		}
		if p != nil && !errors.Is(err, ErrExpired) {
			t.Fatalf("%s: a password with the error", name)
		}
		errs = append(errs, err.Error())
	}
	check("none", ErrNoAttribute, nil)
	var nr *NotReadableError
	check("hidden", ErrNotReadable, &nr)
	check("hiddenv1", ErrNotReadable, &nr)
	var ee *ExpiredError
	check("old", ErrExpired, &ee)
	check("bad", ErrMalformed, nil)
	check("absent", ErrComputerNotFound, nil)
	check("bad,name", ErrMalformed, nil)
	// The encrypted password for an account outside the group.
	r.Keys = rootKeySource{rk: rk, allow: "S-1-5-21-9-9-9-512"}
	var re *RefusedError
	check("enc", ErrDecryptionRefused, &re)
	if re.SID != group {
		t.Fatalf("refusal names %q", re.SID)
	}
	r.Keys = nil
	check("enc", ErrUnsupported, nil)
	// Filter values are escaped.
	if _, err := r.ReadComputer(ctx, "a*b(c)"); err == nil {
		t.Fatal("accepted a name with filter characters")
	}
	for _, f := range dir.filters {
		if strings.Contains(f, "a*b") {
			t.Fatalf("unescaped filter %s", f)
		}
	}
	// No failing path prints the password.
	errs = append(errs, logs.String())
	for _, s := range errs {
		if strings.Contains(s, testSecret) {
			t.Fatalf("password leaked: %s", s)
		}
	}
}
