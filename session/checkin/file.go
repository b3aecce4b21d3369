package checkin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FlagTicketFile is the command-line flag that names the ticket file
// (see FileArgs and ReadTicketFile).
const FlagTicketFile = "ticket-file"

// ErrTicketFile: a ticket file could not be read, parsed or removed.
var ErrTicketFile = errors.New("checkin: ticket file")

// ticketFileVersion is the format of a ticket file.
const ticketFileVersion = 1

// ticketFile is the JSON form of a ticket file.
type ticketFile struct {
	Version     int       `json:"v"`
	Console     string    `json:"console"`
	Fingerprint string    `json:"fingerprint"`
	Token       string    `json:"token"`
	Expires     time.Time `json:"expires,omitzero"`
}

// FileContent returns the ticket as the content of a ticket file: one JSON
// object with the console address, the fingerprint, the token and the
// expiry. The content holds the secret token: write it only where only
// administrators can read it (the applet's own folder on the target), and
// never log it.
func (t Ticket) FileContent() []byte {
	b, _ := json.Marshal(ticketFile{Version: ticketFileVersion, Console: t.Addr, Fingerprint: t.Fingerprint, Token: t.Token, Expires: t.Expires})
	return append(b, '\n')
}

// ParseTicketFile reads a ticket from the content of a ticket file, as
// FileContent wrote it. It checks the ticket (Validate) and its expiry:
// an expired ticket is an error that matches ErrExpired. It does not
// touch any file.
func ParseTicketFile(b []byte) (Ticket, error) {
	var f ticketFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Ticket{}, fmt.Errorf("%w: %w: not a ticket file", ErrBadTicket, ErrTicketFile)
	}
	if f.Version != ticketFileVersion {
		return Ticket{}, fmt.Errorf("%w: %w: unknown version %d", ErrBadTicket, ErrTicketFile, f.Version)
	}
	t := Ticket{Addr: f.Console, Fingerprint: f.Fingerprint, Token: f.Token, Expires: f.Expires}
	if err := t.Validate(); err != nil {
		return Ticket{}, err
	}
	if !t.Expires.IsZero() && time.Now().After(t.Expires) {
		return Ticket{}, ErrExpired
	}
	return t, nil
}

// FileArgs returns the command-line arguments that name a ticket file:
// -ticket-file NAME. NAME is a file name relative to the applet's own
// directory; the arguments carry no secret.
func FileArgs(name string) []string { return []string{"-" + FlagTicketFile, name} }

// ReadTicketFile reads the ticket file at path, removes it, and returns
// the ticket. A relative path is taken relative to the directory of the
// running executable (not the current directory, which is System32 for a
// Windows service), which is where the console writes it. The file is
// removed before the ticket is returned, so the secret stays on disk only
// until the applet starts; a file that cannot be removed is an error
// (matching ErrTicketFile), and so is a missing, malformed or expired
// ticket (ErrBadTicket, ErrExpired). It does not dial the console.
func ReadTicketFile(path string) (Ticket, error) {
	if path == "" {
		return Ticket{}, fmt.Errorf("%w: no file name", ErrTicketFile)
	}
	if !filepath.IsAbs(path) {
		exe, err := os.Executable()
		if err != nil {
			return Ticket{}, fmt.Errorf("%w: locating the executable: %v", ErrTicketFile, err)
		}
		path = filepath.Join(filepath.Dir(exe), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrTicketFile, err)
	}
	rmErr := os.Remove(path)
	t, err := ParseTicketFile(b)
	clear(b)
	if rmErr != nil {
		return Ticket{}, fmt.Errorf("%w: removing %s: %v", ErrTicketFile, filepath.Base(path), rmErr)
	}
	return t, err
}
