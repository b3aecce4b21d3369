package laps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/diag"
	ilaps "github.com/lanconnect/lanconnect/internal/laps"
)

// Format is the LAPS format a password was stored in. The zero value,
// None, means no LAPS password.
type Format string

// The formats. The strings are lanscan's NDJSON `laps` values; the
// credential source of a session is "laps-" + the format.
const (
	None             Format = ""
	Legacy           Format = "legacy"            // ms-Mcs-AdmPwd
	Windows          Format = "windows"           // msLAPS-Password
	WindowsEncrypted Format = "windows-encrypted" // msLAPS-EncryptedPassword
)

// Source returns the credential source name of f for
// session.Result.CredentialSource: "laps-legacy", "laps-windows" or
// "laps-windows-encrypted" ("" for None).
func (f Format) Source() string {
	if f == None {
		return ""
	}
	return "laps-" + string(f)
}

func formatOf(f ilaps.Format) Format { return Format(f.Token()) }

// Attributes are the LAPS attributes of a computer object, for a search
// that wants to call Present.
var Attributes = append([]string(nil), ilaps.Attributes...)

// Present returns the format whose password attribute attrs hold (the
// attributes of one computer object as a search returned them, read as
// the technician), without decrypting or reading the password: None when
// the computer has no LAPS password or the account may not read it.
func Present(attrs map[string][][]byte) Format {
	return formatOf(ilaps.Present(&ilaps.Entry{Attributes: attrs}))
}

// Sentinel errors, matched with errors.Is on a Source's errors.
var (
	ErrNoAttribute       = ilaps.ErrNoAttribute
	ErrNotReadable       = ilaps.ErrNotReadable
	ErrExpired           = ilaps.ErrExpired
	ErrDecryptionRefused = ilaps.ErrDecryptionRefused
	ErrComputerNotFound  = ilaps.ErrComputerNotFound
	// ErrNoAccount: legacy LAPS stores no account name and
	// Source.Account is empty.
	ErrNoAccount = errors.New("laps: the local account of a legacy LAPS password is unknown")
)

// Error is why a Source could not supply a computer's password. It never
// contains the password.
type Error struct {
	// Computer is the computer's name as it was looked up.
	Computer string
	// Format is the format found, when one was.
	Format Format
	// Group is the SID of the group whose members may decrypt, when the
	// DC refused the key (ErrDecryptionRefused).
	Group string
	// Diagnosis explains it (codes laps-*).
	Diagnosis diag.Diagnosis
	Err       error
}

func (e *Error) Error() string {
	return fmt.Sprintf("laps: %s: %v", e.Computer, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Diagnose returns the diagnosis (diag.Diagnoser).
func (e *Error) Diagnose() diag.Diagnosis { return e.Diagnosis }

// Source reads computers' LAPS passwords from Active Directory and
// supplies them as a computer's own administrator credentials
// (adauth.LocalAdminSource). Directory is required; the rest is optional.
// It is safe for concurrent use; each call binds anew and keeps nothing.
type Source struct {
	// Directory is the domain controller and the account to bind as (the
	// technician's: only an account with read rights on the LAPS
	// attributes gets passwords). Its computer listing settings are not
	// used.
	Directory *adauth.Directory
	// KeyServer is the domain controller asked for the decryption key of
	// encrypted passwords (address or name); "" means the host of
	// Directory.URL. KeyServerPort is its endpoint mapper port (0: 135).
	KeyServer     string
	KeyServerPort int
	// KeyServerName, when set, is the computer name the key server's NTLM
	// challenge must announce before the technician's credentials go to
	// it.
	KeyServerName string
	// Account is the local account of legacy LAPS passwords, which store
	// no name. When it is empty, the computer's built-in Administrator
	// (RID 500) is asked of its LSA (adauth.BuiltinAdministrator) as the
	// technician, when the technician's logon on it succeeded (the
	// refusal was "not an administrator"); otherwise, or when the lookup
	// fails, a legacy password fails with ErrNoAccount.
	Account string
	// Now is the clock of the expiry check; nil means time.Now.
	Now func() time.Time
	// Logger receives what was found (formats, DNs, never a password);
	// nil discards.
	Logger *slog.Logger
}

func (s *Source) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// directory adapts adauth.Directory to the internal reader.
type directory struct{ d *adauth.Directory }

func (d directory) SearchOne(ctx context.Context, base, filter string, attrs []string) (*ilaps.Entry, error) {
	e, err := d.d.SearchOne(ctx, base, filter, attrs)
	if e == nil || err != nil {
		return nil, err
	}
	return &ilaps.Entry{DN: e.DN, Attributes: e.Attributes}, nil
}

func (s *Source) keyServer() string {
	if s.KeyServer != "" {
		return s.KeyServer
	}
	if s.Directory == nil || s.Directory.URL == "" {
		return ""
	}
	u, err := url.Parse(s.Directory.URL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// LocalAdmin implements adauth.LocalAdminSource: it reads the password of
// the computer req.Name (req.Host.DN when set) and returns the local
// account ".\name" with it, and the source "laps-" + format. Errors are
// *Error with a laps-* diagnosis.
func (s *Source) LocalAdmin(ctx context.Context, req adauth.LocalAdminRequest) (adauth.Credentials, string, error) {
	name, _, _ := strings.Cut(req.Name, ".")
	fail := func(f Format, err error) (adauth.Credentials, string, error) {
		return adauth.Credentials{}, "", s.explain(name, f, err)
	}
	if s.Directory == nil {
		return fail(None, errors.New("laps: Source.Directory is not set"))
	}
	r := &ilaps.Reader{Directory: directory{s.Directory}, BaseDN: s.Directory.BaseDN, Now: s.Now, Logger: s.Logger}
	if ks := s.keyServer(); ks != "" && !s.Directory.Credentials.IsZero() {
		r.Keys = &ilaps.KeyClient{Host: ks, EPMPort: s.KeyServerPort, Credentials: s.Directory.Credentials,
			ServerName: s.KeyServerName, Logger: s.Logger}
	}
	var p *ilaps.Password
	var err error
	if req.Host.DN != "" {
		p, err = r.ReadDN(ctx, req.Host.DN)
	} else {
		p, err = r.ReadComputer(ctx, name)
	}
	if err != nil {
		f := None
		if p != nil {
			f = formatOf(p.Format)
		}
		return fail(f, err)
	}
	f := formatOf(p.Format)
	account := p.Account
	if account == "" {
		account = s.Account
	}
	if account == "" {
		a, err := s.builtinAdministrator(ctx, req)
		if err != nil {
			return fail(f, fmt.Errorf("%w: %w", ErrNoAccount, err))
		}
		account = a
	}
	creds, err := adauth.Parse(`.\`+account, p.Secret)
	if err != nil {
		return fail(f, fmt.Errorf("%w: account %q: %v", ilaps.ErrMalformed, account, err))
	}
	s.logger().Info("laps: password read", "computer", name, "dn", p.DN, "format", string(f), "account", account)
	return creds, f.Source(), nil
}

// builtinAdministrator looks up the computer's RID-500 account as the
// technician, only when the technician's logon there succeeded: another
// logon failure would count towards the account's lockout.
func (s *Source) builtinAdministrator(ctx context.Context, req adauth.LocalAdminRequest) (string, error) {
	if !errors.Is(req.Reason, adauth.ErrNotAdmin) {
		return "", errors.New("the technician cannot log on to the computer to look up its built-in Administrator")
	}
	addr := req.Addr
	if addr == "" {
		addr = adauth.AddrOf(req.Host)
	}
	return adauth.BuiltinAdministrator(ctx, addr, s.Directory.Credentials)
}

// explain wraps err with its diagnosis.
func (s *Source) explain(name string, f Format, err error) error {
	e := &Error{Computer: name, Format: f, Err: err}
	what := f.String()
	var re *ilaps.RefusedError
	var ee *ilaps.ExpiredError
	switch {
	case errors.As(err, &re):
		e.Group = re.SID
		e.Diagnosis = diag.Diagnosis{Code: diag.LAPSRefused,
			Summary: fmt.Sprintf("LAPS cannot help with %s: the domain controller refused the key to decrypt its Windows LAPS password; only members of %s may decrypt it.", name, re.SID),
			Fix:     "Use an account that is a member of " + re.SID + ", or have the LAPS policy encrypt for a group the technician is in."}
	case errors.As(err, &ee):
		e.Diagnosis = diag.Diagnosis{Code: diag.LAPSExpired,
			Summary: fmt.Sprintf("LAPS cannot help with %s: its %s password expired at %s; the computer may have changed it.", name, what, ee.Expired.UTC().Format(time.RFC3339)),
			Fix:     "Let the computer rotate and store its password (Invoke-LapsPolicyProcessing), or reset it, then connect again."}
	case errors.Is(err, ilaps.ErrNotReadable):
		e.Diagnosis = diag.Diagnosis{Code: diag.LAPSNotReadable,
			Summary: fmt.Sprintf("LAPS cannot help with %s: the directory withheld its LAPS password from this account (a confidential attribute it may not read).", name),
			Fix:     "Use an account with read rights on the computer's LAPS password (Set-LapsADReadPasswordPermission), or an administrator account."}
	case errors.Is(err, ilaps.ErrNoAttribute):
		e.Diagnosis = diag.Diagnosis{Code: diag.LAPSNoAttribute,
			Summary: fmt.Sprintf("LAPS cannot help with %s: its computer object has no LAPS password attribute (LAPS does not manage it, or has not stored a password yet).", name),
			Fix:     "Enable LAPS for the computer, or use an administrator account."}
	case errors.Is(err, ilaps.ErrComputerNotFound):
		e.Diagnosis = diag.Diagnosis{Code: diag.LAPSNotFound,
			Summary: fmt.Sprintf("LAPS cannot help with %s: the directory has no computer object named %s$.", name, name),
			Fix:     "Connect by the computer's name as the domain knows it, and check the directory address."}
	case errors.Is(err, ErrNoAccount):
		e.Diagnosis = diag.Diagnosis{Code: diag.LAPSFailed,
			Summary: fmt.Sprintf("LAPS cannot help with %s: its legacy LAPS password names no account, none is configured, and its built-in Administrator could not be looked up (%v).", name, err),
			Fix:     "Name the computer's LAPS-managed local account (connect -laps-account NAME, laps.Source.Account)."}
	default:
		e.Diagnosis = diag.Diagnosis{Code: diag.LAPSFailed,
			Summary: fmt.Sprintf("LAPS cannot help with %s: %v", name, err),
			Fix:     "Check the directory address, its certificate, the account and, for encrypted passwords, the DC's key service."}
	}
	s.logger().Info("laps: no usable password", "computer", name, "code", e.Diagnosis.Code, "err", err)
	return e
}

// String returns the name a technician reads, for example "Windows LAPS
// (encrypted)", and "LAPS" for None.
func (f Format) String() string {
	for _, i := range []ilaps.Format{ilaps.Legacy, ilaps.Windows, ilaps.WindowsEncrypted} {
		if formatOf(i) == f {
			return i.String()
		}
	}
	return "LAPS"
}

var _ adauth.LocalAdminSource = (*Source)(nil)
