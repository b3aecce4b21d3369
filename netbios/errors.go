package netbios

import (
	"errors"
	"fmt"
)

// Parse errors. Unpack wraps them in a *ParseError that says where the
// problem is; match them with errors.Is.
var (
	// ErrTruncated means the packet ends before a field it announces.
	ErrTruncated = errors.New("packet truncated")
	// ErrBadPointer means a label string pointer where none is allowed, or
	// one that does not point strictly backwards to a full name.
	ErrBadPointer = errors.New("bad compression pointer")
	// ErrBadLabel means a reserved label type or a malformed scope label.
	ErrBadLabel = errors.New("bad label")
	// ErrBadName means a first-level name that is not a 32-byte label of
	// the letters 'A' to 'P', or a name that cannot be built or encoded.
	ErrBadName = errors.New("bad NetBIOS name")
	// ErrNameTooLong means an encoded name longer than 255 bytes.
	ErrNameTooLong = errors.New("name too long")
	// ErrInconsistent means fields that contradict each other, such as a
	// record whose data is shorter than its own counts require.
	ErrInconsistent = errors.New("inconsistent record")
	// ErrTooLarge means a message that cannot be packed within the limits
	// of the format (more than 65535 records or bytes of data).
	ErrTooLarge = errors.New("message too large")
)

// ParseError reports where and why a packet could not be parsed.
type ParseError struct {
	// Section is the part being parsed: "header", "question", "answer",
	// "authority" or "additional", with the record's index for records.
	Section string
	// Offset is the byte offset in the packet where the problem is.
	Offset int
	// Err is one of the Err* variables of this package.
	Err error
}

// Error says which section, which offset and what went wrong.
func (e *ParseError) Error() string {
	return fmt.Sprintf("netbios: parsing %s at offset %d: %v", e.Section, e.Offset, e.Err)
}

// Unwrap returns e.Err.
func (e *ParseError) Unwrap() error { return e.Err }

// RCodeError is the error for a response whose RCODE is not zero, such as
// a negative name query response.
type RCodeError struct {
	RCode RCode
	Name  Name // the name the response is about
}

// Error returns the name and the RCODE in words.
func (e *RCodeError) Error() string {
	return fmt.Sprintf("netbios: %v: %v", e.Name, e.RCode)
}

// Is makes errors.Is(err, ErrNameNotFound) true for RCodeNameError.
func (e *RCodeError) Is(target error) bool {
	return target == ErrNameNotFound && e.RCode == RCodeNameError
}

// ErrNameNotFound matches an *RCodeError with RCodeNameError: the server
// says the name does not exist (a negative name query response).
var ErrNameNotFound = errors.New("name not found")
