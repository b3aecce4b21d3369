package laps

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors, matched with errors.Is. None of the errors of this
// package ever carries a password or key material.
var (
	// ErrNoAttribute: the computer object has none of the LAPS
	// attributes (LAPS does not manage it, or has not written yet).
	ErrNoAttribute = errors.New("laps: the computer has no LAPS password attribute")
	// ErrNotReadable: the attribute exists in the schema and the object
	// was read, but the directory withheld its value from this account
	// (a confidential attribute, or an ACL without read rights).
	ErrNotReadable = errors.New("laps: the account may not read the LAPS password attribute")
	// ErrExpired: the password's expiration time has passed; the
	// computer may already have changed it.
	ErrExpired = errors.New("laps: the LAPS password has expired")
	// ErrDecryptionRefused: the DC refused the group key (GetKey access
	// denied): the account is not in the group the blob was encrypted for.
	ErrDecryptionRefused = errors.New("laps: the domain controller refused to release the decryption key")
	// ErrMalformed: an attribute value or a structure inside it is not
	// in the documented format.
	ErrMalformed = errors.New("laps: malformed LAPS data")
	// ErrUnsupported: a well-formed value uses an algorithm or option
	// this package does not implement.
	ErrUnsupported = errors.New("laps: unsupported LAPS data")
	// ErrDecrypt: the keys did not decrypt the blob (a wrong or forged
	// group key, or corrupted data).
	ErrDecrypt = errors.New("laps: decryption failed")
	// ErrComputerNotFound: no computer object matched the name.
	ErrComputerNotFound = errors.New("laps: computer object not found")
)

// FormatError reports malformed data; it matches ErrMalformed. It names
// the structure and the reason, never the value.
type FormatError struct {
	What   string
	Reason string
}

func (e *FormatError) Error() string { return "laps: malformed " + e.What + ": " + e.Reason }

// Is makes FormatError match ErrMalformed.
func (e *FormatError) Is(target error) bool { return target == ErrMalformed }

// ExpiredError is ErrExpired with the expiration time.
type ExpiredError struct {
	Format  Format
	Expired time.Time
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("laps: the %s password expired at %s", e.Format, e.Expired.UTC().Format(time.RFC3339))
}

// Is makes ExpiredError match ErrExpired.
func (e *ExpiredError) Is(target error) bool { return target == ErrExpired }

// RefusedError is ErrDecryptionRefused with the group the blob was
// encrypted for: only its members may decrypt.
type RefusedError struct {
	// SID is the protection descriptor's SID (the authorised group).
	SID string
	// Err is the DC's answer (for example E_ACCESSDENIED).
	Err error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("laps: the domain controller refused the decryption key: only members of %s may decrypt this password: %v", e.SID, e.Err)
}

// Is makes RefusedError match ErrDecryptionRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrDecryptionRefused }

// Unwrap returns the DC's answer.
func (e *RefusedError) Unwrap() error { return e.Err }

// NotReadableError is ErrNotReadable with what was seen.
type NotReadableError struct {
	// DN is the computer object's DN.
	DN string
	// Attributes are the LAPS attributes the account may not read.
	Attributes []string
	// Evidence says how it was told apart from "not set".
	Evidence string
}

func (e *NotReadableError) Error() string {
	return fmt.Sprintf("laps: the account may not read %v of %s (%s)", e.Attributes, e.DN, e.Evidence)
}

// Is makes NotReadableError match ErrNotReadable.
func (e *NotReadableError) Is(target error) bool { return target == ErrNotReadable }
