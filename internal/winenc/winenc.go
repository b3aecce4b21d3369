// Package wintime converts Windows FILETIME values (100-nanosecond
// intervals since 1601-01-01 UTC), as Active Directory and LAPS store
// them, to time.Time. It is shared by adauth and internal/laps, which must
// not import each other's packages in both directions.
package wintime

import "time"

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
