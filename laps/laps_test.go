package laps

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/diag"
	ilaps "github.com/lanconnect/lanconnect/internal/laps"
)

// Each failure of the reader becomes its diagnosis, names LAPS and the
// computer, and stays matchable.
func TestExplain(t *testing.T) {
	s := &Source{}
	for _, tc := range []struct {
		err    error
		f      Format
		code   diag.Code
		target error
		has    string
	}{
		{fmt.Errorf("%w: CN=PC1", ilaps.ErrNoAttribute), None, diag.LAPSNoAttribute, ErrNoAttribute, "no LAPS password attribute"},
		{&ilaps.NotReadableError{DN: "CN=PC1", Attributes: []string{ilaps.AttrLegacyPassword}, Evidence: "withheld"}, None, diag.LAPSNotReadable, ErrNotReadable, "confidential"},
		{&ilaps.ExpiredError{Format: ilaps.Windows, Expired: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, Windows, diag.LAPSExpired, ErrExpired, "2026-01-02T03:04:05Z"},
		{&ilaps.RefusedError{SID: "S-1-5-21-1-2-3-512", Err: ilaps.HResultError(0x80070005)}, None, diag.LAPSRefused, ErrDecryptionRefused, "S-1-5-21-1-2-3-512"},
		{fmt.Errorf("%w: PC1$", ilaps.ErrComputerNotFound), None, diag.LAPSNotFound, ErrComputerNotFound, "PC1$"},
		{ErrNoAccount, Legacy, diag.LAPSFailed, ErrNoAccount, "-laps-account"},
		{errors.New("ldap: connection refused"), None, diag.LAPSFailed, nil, "connection refused"},
	} {
		err := s.explain("PC1", tc.f, tc.err)
		var e *Error
		if !errors.As(err, &e) || e.Diagnosis.Code != tc.code || e.Computer != "PC1" || e.Format != tc.f {
			t.Fatalf("%v: got %#v", tc.err, err)
		}
		if tc.target != nil && !errors.Is(err, tc.target) {
			t.Fatalf("%v does not match %v", err, tc.target)
		}
		d := e.Diagnose()
		if !strings.Contains(d.Summary, "LAPS") || !strings.Contains(d.Summary, "PC1") || d.Fix == "" ||
			!strings.Contains(d.String(), tc.has) {
			t.Fatalf("%s: diagnosis %+v, want %q in it", tc.code, d, tc.has)
		}
		if tc.code == diag.LAPSRefused && e.Group != "S-1-5-21-1-2-3-512" {
			t.Fatalf("group %q", e.Group)
		}
	}
}

func TestFormat(t *testing.T) {
	for f, want := range map[Format][2]string{
		Legacy: {"laps-legacy", "legacy LAPS"}, Windows: {"laps-windows", "Windows LAPS"},
		WindowsEncrypted: {"laps-windows-encrypted", "Windows LAPS (encrypted)"}, None: {"", "LAPS"},
	} {
		if f.Source() != want[0] || f.String() != want[1] {
			t.Fatalf("%q: %q %q", f, f.Source(), f.String())
		}
	}
	attrs := map[string][][]byte{"MS-MCS-ADMPWD": {[]byte("x")}, "ms-Mcs-AdmPwdExpirationTime": {[]byte("1")}}
	if got := Present(attrs); got != Legacy {
		t.Fatalf("Present %q", got)
	}
	if got := Present(map[string][][]byte{ilaps.AttrExpiration: {[]byte("1")}}); got != None {
		t.Fatalf("Present of an expiration only: %q", got)
	}
}

// The built-in Administrator is looked up only where the technician's
// logon succeeded: another failed logon would count towards a lockout.
func TestBuiltinAdministratorOnlyAfterLogon(t *testing.T) {
	s := &Source{}
	_, err := s.builtinAdministrator(t.Context(), adauth.LocalAdminRequest{Name: "PC1", Addr: "192.0.2.1",
		Reason: &adauth.AuthError{Kind: adauth.ErrLogonFailure}})
	if err == nil || !strings.Contains(err.Error(), "cannot log on") {
		t.Fatalf("got %v", err)
	}
}
