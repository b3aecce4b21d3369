package laps

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/lanconnect/lanconnect/internal/winenc"
)

// The LAPS attributes of a computer object.
const (
	AttrLegacyPassword    = "ms-Mcs-AdmPwd"
	AttrLegacyExpiration  = "ms-Mcs-AdmPwdExpirationTime"
	AttrPassword          = "msLAPS-Password"
	AttrEncryptedPassword = "msLAPS-EncryptedPassword"
	AttrExpiration        = "msLAPS-PasswordExpirationTime"
)

// Format is where a LAPS password came from. The zero value is None.
type Format int

const (
	// None: no LAPS password.
	None Format = iota
	// Legacy is Microsoft LAPS (ms-Mcs-AdmPwd): a plain password, no
	// account name.
	Legacy
	// Windows is Windows LAPS with a plain password (msLAPS-Password).
	Windows
	// WindowsEncrypted is Windows LAPS with a DPAPI-NG encrypted
	// password (msLAPS-EncryptedPassword).
	WindowsEncrypted
)

// String returns the name a technician reads, for example "Windows LAPS
// (encrypted)".
func (f Format) String() string {
	switch f {
	case None:
		return "no LAPS"
	case Legacy:
		return "legacy LAPS"
	case Windows:
		return "Windows LAPS"
	case WindowsEncrypted:
		return "Windows LAPS (encrypted)"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Token returns the short machine-readable name: "legacy", "windows" or
// "windows-encrypted" (the values of lanscan's `laps` field; connect's
// credential_source is "laps-" + Token), and "" for None.
func (f Format) Token() string {
	switch f {
	case Legacy:
		return "legacy"
	case Windows:
		return "windows"
	case WindowsEncrypted:
		return "windows-encrypted"
	}
	return ""
}

// Password is a computer's LAPS password. Its String, GoString and
// LogValue methods never show the password, so a Password may be logged
// or wrapped in an error; the Secret field itself must not be.
type Password struct {
	Format Format
	// Account is the managed local account (the Windows LAPS JSON "n"
	// field); empty for legacy LAPS, which does not store it.
	Account string
	// Secret is the password. It lives only in memory.
	Secret string
	// Updated is when the password was set (Windows LAPS only).
	Updated time.Time
	// Expires is when the computer will change it; zero if unknown.
	Expires time.Time
	// DN is the computer object the password was read from, when known.
	DN string
}

// String describes p without its secret.
func (p *Password) String() string {
	if p == nil {
		return "<nil>"
	}
	s := p.Format.String() + " password"
	if p.Account != "" {
		s += " for " + p.Account
	}
	if !p.Expires.IsZero() {
		s += ", expires " + p.Expires.UTC().Format(time.RFC3339)
	}
	return s + " [REDACTED]"
}

// GoString is String, so %#v does not print the secret either.
func (p *Password) GoString() string { return p.String() }

// LogValue logs p without its secret.
func (p *Password) LogValue() slog.Value {
	if p == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(slog.String("format", p.Format.Token()), slog.String("account", p.Account),
		slog.Time("expires", p.Expires), slog.String("secret", "[REDACTED]"))
}

// CheckExpiry returns an *ExpiredError when p's expiration time is before
// now. A password without an expiration time never expires here.
func (p *Password) CheckExpiry(now time.Time) error {
	if !p.Expires.IsZero() && p.Expires.Before(now) {
		return &ExpiredError{Format: p.Format, Expired: p.Expires}
	}
	return nil
}

// filetimeEpoch is 1970-01-01 in 100 ns intervals since 1601-01-01.
const filetimeEpoch = 116444736000000000

func timeToFiletime(t time.Time) int64 {
	return t.UnixNano()/100 + filetimeEpoch
}

// Filetime returns t as a decimal FILETIME, the form of the expiration
// attributes (for tests and the lab).
func Filetime(t time.Time) string { return strconv.FormatInt(timeToFiletime(t), 10) }

// parseExpiration parses an expiration attribute: a decimal FILETIME.
// Empty means unknown (zero time).
func parseExpiration(attr, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	ft, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ft < 0 {
		return time.Time{}, &FormatError{What: attr, Reason: "not a FILETIME"}
	}
	return winenc.FromFiletime(ft), nil
}

// ParseLegacy builds a legacy LAPS password from the values of
// ms-Mcs-AdmPwd and ms-Mcs-AdmPwdExpirationTime (may be empty). It does
// not check the expiry.
func ParseLegacy(password, expiration string) (*Password, error) {
	if password == "" {
		return nil, &FormatError{What: AttrLegacyPassword, Reason: "empty"}
	}
	exp, err := parseExpiration(AttrLegacyExpiration, expiration)
	if err != nil {
		return nil, err
	}
	return &Password{Format: Legacy, Secret: password, Expires: exp}, nil
}

// windowsJSON is the Windows LAPS password JSON.
type windowsJSON struct {
	N *string `json:"n"`
	T *string `json:"t"`
	P *string `json:"p"`
}

// ParseWindows builds a Windows LAPS password from the msLAPS-Password
// JSON ({"n": account, "t": hex FILETIME of the update, "p": password})
// and msLAPS-PasswordExpirationTime (may be empty). It does not check the
// expiry. Errors never quote the JSON, which holds the password.
func ParseWindows(value []byte, expiration string) (*Password, error) {
	return parseWindowsJSON(Windows, AttrPassword, value, expiration)
}

func parseWindowsJSON(f Format, attr string, value []byte, expiration string) (*Password, error) {
	var j windowsJSON
	if err := json.Unmarshal(value, &j); err != nil {
		// The decoder's message may quote part of the value: drop it.
		return nil, &FormatError{What: attr, Reason: "not JSON"}
	}
	if j.N == nil || j.P == nil || j.T == nil {
		return nil, &FormatError{What: attr, Reason: `JSON lacks "n", "t" or "p"`}
	}
	if *j.N == "" || *j.P == "" {
		return nil, &FormatError{What: attr, Reason: "empty account or password"}
	}
	if strings.ContainsAny(*j.N, `\/@"[]:;|=,+*?<>`) {
		return nil, &FormatError{What: attr, Reason: "account name has characters a local account cannot have"}
	}
	ft, err := strconv.ParseUint(*j.T, 16, 63)
	if err != nil {
		return nil, &FormatError{What: attr, Reason: `"t" is not a hexadecimal FILETIME`}
	}
	exp, err := parseExpiration(AttrExpiration, expiration)
	if err != nil {
		return nil, err
	}
	return &Password{Format: f, Account: *j.N, Secret: *j.P, Updated: winenc.FromFiletime(int64(ft)), Expires: exp}, nil
}

// Encrypted is a parsed msLAPS-EncryptedPassword value.
type Encrypted struct {
	// Updated is the update time of the header.
	Updated time.Time
	// Blob is the DPAPI-NG blob.
	Blob *Blob
}

// ParseEncrypted parses an msLAPS-EncryptedPassword value: the update
// time (high then low 32 bits of a FILETIME, little-endian), the blob's
// size, 4 reserved bytes, then the DPAPI-NG blob.
func ParseEncrypted(value []byte) (*Encrypted, error) {
	if len(value) < 16 {
		return nil, &FormatError{What: AttrEncryptedPassword, Reason: fmt.Sprintf("%d bytes, shorter than its header", len(value))}
	}
	ft := int64(binary.LittleEndian.Uint32(value[0:]))<<32 | int64(binary.LittleEndian.Uint32(value[4:]))
	size := binary.LittleEndian.Uint32(value[8:])
	rest := value[16:]
	if uint64(size) > uint64(len(rest)) || size == 0 {
		return nil, &FormatError{What: AttrEncryptedPassword, Reason: fmt.Sprintf("header says %d bytes of blob, %d follow", size, len(rest))}
	}
	b, err := ParseBlob(rest[:size])
	if err != nil {
		return nil, err
	}
	return &Encrypted{Updated: winenc.FromFiletime(ft), Blob: b}, nil
}

// EncodeEncrypted builds an msLAPS-EncryptedPassword value from a blob
// (the reverse of ParseEncrypted), for tests and the lab.
func EncodeEncrypted(updated time.Time, blob []byte) []byte {
	ft := uint64(timeToFiletime(updated))
	b := binary.LittleEndian.AppendUint32(nil, uint32(ft>>32))
	b = binary.LittleEndian.AppendUint32(b, uint32(ft))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(blob)))
	b = append(b, 0, 0, 0, 0)
	return append(b, blob...)
}

// ParseDecrypted builds the password from a decrypted blob's plaintext
// (UTF-16LE JSON, as msLAPS-Password holds, possibly null-terminated).
func ParseDecrypted(plaintext []byte, expiration string) (*Password, error) {
	if len(plaintext)%2 != 0 {
		return nil, &FormatError{What: "decrypted " + AttrEncryptedPassword, Reason: "odd length for UTF-16"}
	}
	s := strings.TrimRight(winenc.DecodeUTF16LE(plaintext), "\x00")
	return parseWindowsJSON(WindowsEncrypted, "decrypted "+AttrEncryptedPassword, []byte(s), expiration)
}

// EncodeWindowsJSON builds the Windows LAPS password JSON, for tests and
// the lab.
func EncodeWindowsJSON(account, password string, updated time.Time) []byte {
	b, _ := json.Marshal(map[string]string{"n": account, "t": strconv.FormatInt(timeToFiletime(updated), 16), "p": password})
	return b
}
