package checkin

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Errors matched with errors.Is.
var (
	// ErrBadTicket: a ticket is incomplete or malformed.
	ErrBadTicket = errors.New("checkin: bad ticket")
	// ErrFingerprint: the console's certificate does not match the pinned fingerprint.
	ErrFingerprint = errors.New("checkin: console certificate does not match the pinned fingerprint")
	// ErrRejected: the console refused the check-in (unknown, reused or expired token).
	ErrRejected = errors.New("checkin: rejected by the console")
	// ErrExpired: a ticket expired before its applet checked in.
	ErrExpired = errors.New("checkin: ticket expired before the applet checked in")
	// ErrClosed: the server or connection is closed.
	ErrClosed = errors.New("checkin: closed")
)

// protocolVersion is sent in every hello; a server refuses versions it does
// not know.
const protocolVersion = 1

// Ticket is what an applet needs to check in: where the console listens,
// which certificate to trust, and the one-time token.
//
// Token is a secret: Ticket's String and fmt verbs redact it.
type Ticket struct {
	Addr        string    // host:port the applet dials
	Fingerprint string    // hex SHA-256 of the console certificate (DER)
	Token       string    // one-time token, base64url
	Expires     time.Time // zero in tickets parsed from arguments
}

// The command-line flag names used by Args and ParseArgs.
const (
	FlagConsole     = "console"
	FlagFingerprint = "console-fingerprint"
	FlagToken       = "token"
)

// Args returns the ticket as command-line arguments for the applet:
// -console ADDR -console-fingerprint HEX -token TOKEN.
//
// A command line is readable by every local user of the target (the
// process list, a service's ImagePath, event 7045), so a console must not
// use Args on a real target: write the ticket to a file in the applet's
// folder (FileContent) and pass FileArgs instead, as lanconnect's session
// does. Args stays for tests and for applets that parse the old flags.
func (t Ticket) Args() []string {
	return []string{"-" + FlagConsole, t.Addr, "-" + FlagFingerprint, t.Fingerprint, "-" + FlagToken, t.Token}
}

// RegisterFlags registers the ticket flags on fs and returns a function
// that builds the Ticket after fs.Parse. It is how an applet with flags of
// its own reads its ticket.
//
// The function reads the ticket from -ticket-file NAME when that flag is
// set (ReadTicketFile: relative to the executable's directory, and the
// file is removed), and otherwise from the older -console,
// -console-fingerprint and -token flags, which are kept for
// compatibility. Setting both is an error.
func RegisterFlags(fs *flag.FlagSet) func() (Ticket, error) {
	var t Ticket
	var file string
	fs.StringVar(&t.Addr, FlagConsole, "", "console check-in address (host:port); prefer -"+FlagTicketFile)
	fs.StringVar(&t.Fingerprint, FlagFingerprint, "", "hex SHA-256 fingerprint of the console certificate; prefer -"+FlagTicketFile)
	fs.StringVar(&t.Token, FlagToken, "", "one-time check-in token; prefer -"+FlagTicketFile)
	fs.StringVar(&file, FlagTicketFile, "", "check-in ticket file, relative to the applet's directory; it is removed once read")
	return func() (Ticket, error) {
		if file != "" {
			if t != (Ticket{}) {
				return Ticket{}, fmt.Errorf("%w: -%s and the -%s, -%s or -%s flags are exclusive", ErrBadTicket, FlagTicketFile, FlagConsole, FlagFingerprint, FlagToken)
			}
			return ReadTicketFile(file)
		}
		return t, t.Validate()
	}
}

// ParseArgs reads a ticket from arguments written by Args or FileArgs (a
// ticket file is read and removed, as RegisterFlags does). Other arguments
// are an error; use RegisterFlags to mix them with an applet's own flags.
func ParseArgs(args []string) (Ticket, error) {
	fs := flag.NewFlagSet("checkin", flag.ContinueOnError)
	fs.SetOutput(discardWriter{})
	get := RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrBadTicket, err)
	}
	if fs.NArg() > 0 {
		return Ticket{}, fmt.Errorf("%w: unexpected argument %q", ErrBadTicket, fs.Arg(0))
	}
	return get()
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// Validate reports whether the ticket has every field, with a fingerprint
// of the right form.
func (t Ticket) Validate() error {
	switch {
	case t.Addr == "":
		return fmt.Errorf("%w: no console address", ErrBadTicket)
	case t.Token == "":
		return fmt.Errorf("%w: no token", ErrBadTicket)
	}
	if b, err := hex.DecodeString(normFingerprint(t.Fingerprint)); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("%w: fingerprint must be 64 hexadecimal digits", ErrBadTicket)
	}
	return nil
}

// String returns the ticket with the token redacted.
func (t Ticket) String() string {
	return fmt.Sprintf("checkin ticket for %s (fingerprint %s, token REDACTED)", t.Addr, t.Fingerprint)
}

// Format makes every fmt verb print the redacted form.
func (t Ticket) Format(f fmt.State, _ rune) { fmt.Fprint(f, t.String()) }

// Fingerprint returns the hex SHA-256 of a certificate's DER encoding, the
// form Ticket.Fingerprint uses.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

func normFingerprint(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
}

// Hello is what an applet says about itself when it checks in.
type Hello struct {
	Version int    `json:"v"`
	Token   string `json:"token"`
	Name    string `json:"host,omitempty"`    // the applet's computer name
	PID     int    `json:"pid,omitempty"`     // the applet's process ID
	Applet  string `json:"applet,omitempty"`  // applet name and version
	Service bool   `json:"service,omitempty"` // running under the Service Control Manager
}

// reply is the server's answer to a hello.
type reply struct {
	OK      bool   `json:"ok"`
	Session string `json:"session,omitempty"`
	Error   string `json:"error,omitempty"`
}

// message is one line on an accepted connection.
type message struct {
	Type string    `json:"type"` // "heartbeat" or "bye" (applet), "stop" (console)
	Time time.Time `json:"time,omitzero"`
}
