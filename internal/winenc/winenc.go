// Package winenc holds the Windows encodings that several packages of
// the module read and write: FILETIME values (100-nanosecond intervals
// since 1601-01-01 UTC, as Active Directory and LAPS store them) and
// UTF-16LE strings (registry values, NTLM, LDAP's unicodePwd, DPAPI-NG).
// It imports nothing of the module, so any package may use it (adauth and
// internal/laps cannot import each other's packages in both directions).
package winenc

import (
	"encoding/binary"
	"time"
	"unicode/utf16"
)

// epochOffset is the number of 100 ns intervals from 1601-01-01 to
// 1970-01-01.
const epochOffset = 116444736000000000

// FromFiletime converts ft to UTC time. Zero, negative values and
// 0x7FFFFFFFFFFFFFFF ("never") give the zero time. It does not validate
// that the result is a plausible date.
func FromFiletime(ft int64) time.Time {
	if ft <= 0 || ft == 0x7FFFFFFFFFFFFFFF {
		return time.Time{}
	}
	d := ft - epochOffset // 100 ns units since the Unix epoch
	sec := d / 10_000_000
	nsec := (d % 10_000_000) * 100
	if nsec < 0 {
		sec--
		nsec += 1_000_000_000
	}
	return time.Unix(sec, nsec).UTC()
}

// EncodeUTF16LE encodes s as UTF-16LE, without a terminating NUL (append
// "\x00" to s for one).
func EncodeUTF16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// DecodeUTF16LE decodes UTF-16LE bytes. An odd last byte is ignored and
// invalid surrogates become U+FFFD; a NUL is kept (callers that read a
// NUL-terminated string cut it themselves). It never fails.
func DecodeUTF16LE(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
