package adauth

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/winenc"
)

// The LAPS password attributes (Directory.LAPS), in order of preference,
// with the Host.LAPS format each one means.
var lapsAttributes = []struct{ attr, format string }{
	{"msLAPS-EncryptedPassword", "windows-encrypted"},
	{"msLAPS-Password", "windows"},
	{"ms-Mcs-AdmPwd", "legacy"},
}

// attributes are the attributes the listing asks for.
func (d *Directory) attributes() []string {
	if !d.LAPS {
		return computerAttributes
	}
	out := slices.Clone(computerAttributes)
	for _, a := range lapsAttributes {
		out = append(out, a.attr)
	}
	return out
}

// lapsFormat returns the format of the most preferred LAPS password
// attribute e holds a value of, and clears every LAPS value from e.
func lapsFormat(e *ldap.Entry) string {
	format := ""
	for _, l := range lapsAttributes {
		for _, a := range e.Attributes {
			if !strings.EqualFold(a.Name, l.attr) {
				continue
			}
			if len(a.ByteValues) > 0 && format == "" {
				format = l.format
			}
			for _, v := range a.ByteValues {
				clear(v)
			}
			a.Values, a.ByteValues = nil, nil
		}
	}
	return format
}

// computerAttributes are the attributes the discoverer asks for.
var computerAttributes = []string{
	"name",
	"sAMAccountName",
	"dNSHostName",
	"operatingSystem",
	"operatingSystemVersion",
	"lastLogonTimestamp",
	"whenCreated",
	"userAccountControl",
	"objectGUID",
}

// FormatGUID returns the canonical string form
// ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lower case) of a 16-byte
// objectGUID as it travels on the wire. The first three groups are stored
// little-endian (the Windows GUID structure) and are byte-swapped here; the
// last two are in byte order. It returns "" when b is not 16 bytes long.
func FormatGUID(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	o := [16]byte{
		b[3], b[2], b[1], b[0],
		b[5], b[4],
		b[7], b[6],
		b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15],
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range o {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&0xf])
	}
	return string(out)
}

// FiletimeToTime converts a Windows FILETIME (100 ns intervals since
// 1601-01-01 UTC), as in lastLogonTimestamp, to a UTC time. The values 0
// and 0x7FFFFFFFFFFFFFFF mean "never" and give the zero time, and so does
// any negative value.
func FiletimeToTime(ft int64) time.Time { return winenc.FromFiletime(ft) }

// parseFiletime parses the decimal text of a FILETIME attribute.
func parseFiletime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("FILETIME %q: %w", s, err)
	}
	return FiletimeToTime(v), nil
}

// parseGeneralizedTime parses an LDAP GeneralizedTime (whenCreated).
func parseGeneralizedTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := ber.ParseGeneralizedTime([]byte(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("GeneralizedTime %q: %w", s, err)
	}
	return t.UTC(), nil
}

var errNoName = errors.New("entry has no name")

// entryToHost maps a computer entry to a discovery.Host. domain is the
// domain name the hosts are reported in; now is the time they were seen.
// An attribute with a malformed value is left unset rather than failing the
// whole entry; the returned error (nil when all was well) says what was
// skipped, for the log.
func entryToHost(e *ldap.Entry, domain string, now time.Time) (discovery.Host, error) {
	h := discovery.Host{
		LAPS:      lapsFormat(e),
		DN:        e.DN,
		Domain:    domain,
		Sources:   []discovery.Source{discovery.SourceLDAP},
		FirstSeen: now,
		LastSeen:  now,
	}
	var errs []error
	// The NetBIOS name is sAMAccountName without its trailing '$'; the cn
	// (name) is a fallback.
	if sam := e.GetEqualFoldAttributeValue("sAMAccountName"); sam != "" {
		h.Name = strings.TrimSuffix(sam, "$")
	}
	if h.Name == "" {
		h.Name = e.GetEqualFoldAttributeValue("name")
	}
	if h.Name == "" {
		errs = append(errs, errNoName)
	}
	h.DNSName = strings.TrimSuffix(e.GetEqualFoldAttributeValue("dNSHostName"), ".")
	h.OS = e.GetEqualFoldAttributeValue("operatingSystem")
	h.OSVersion = e.GetEqualFoldAttributeValue("operatingSystemVersion")
	if g := e.GetEqualFoldRawAttributeValue("objectGUID"); len(g) > 0 {
		h.GUID = FormatGUID(g)
		if h.GUID == "" {
			errs = append(errs, fmt.Errorf("objectGUID has %d bytes, want 16", len(g)))
		}
	}
	if t, err := parseFiletime(e.GetEqualFoldAttributeValue("lastLogonTimestamp")); err != nil {
		errs = append(errs, err)
	} else {
		h.LastLogon = t
	}
	if t, err := parseGeneralizedTime(e.GetEqualFoldAttributeValue("whenCreated")); err != nil {
		errs = append(errs, err)
	} else {
		h.Created = t
	}
	if s := e.GetEqualFoldAttributeValue("userAccountControl"); s != "" {
		// userAccountControl is a signed 32-bit INTEGER in the schema.
		if v, err := strconv.ParseInt(s, 10, 64); err != nil {
			errs = append(errs, fmt.Errorf("userAccountControl %q: %w", s, err))
		} else {
			enabled := v&uacDisabled == 0
			h.Enabled = &enabled
			if v&uacServerTrust != 0 {
				h.Roles = []discovery.Role{discovery.RoleDomainController}
			}
		}
	}
	return h, errors.Join(errs...)
}
