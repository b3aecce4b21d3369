package checkin_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lanconnect/lanconnect/session/checkin"
)

// A ticket's round trip: the console writes the ticket file next to the
// applet and names it on the command line; the applet reads the file,
// which removes it, and gets the same ticket back. A console gets its
// ticket from Server.Expect (random token, ephemeral certificate); this one
// is written by hand so that the output does not change. The token is a
// secret: it is masked when printed, and a Ticket prints itself redacted.
func ExampleTicket_FileContent() {
	t := checkin.Ticket{
		Addr:        "192.0.2.1:47001",
		Fingerprint: strings.Repeat("ab", 32),
		Token:       "fixed-example-token-not-random",
		Expires:     time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC),
	}

	// The console's side: the content of the ticket file, and the
	// arguments that name it (no secret on the command line).
	content := t.FileContent()
	fmt.Print(strings.ReplaceAll(string(content), t.Token, "<token>"))
	fmt.Println(checkin.FileArgs("s1.ticket"))

	// The applet's side. Here the "applet's folder" is a temporary
	// directory; a relative name would be read next to the executable.
	dir, err := os.MkdirTemp("", "checkin-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s1.ticket")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		fmt.Println(err)
		return
	}
	got, err := checkin.ReadTicketFile(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, statErr := os.Stat(path)
	fmt.Println("file removed:", errors.Is(statErr, os.ErrNotExist))
	fmt.Println(got)
	fmt.Println(got.Addr, got.Expires.Format(time.RFC3339), "same token:", got.Token == t.Token)

	// An expired ticket, or a file that is not a ticket, is refused.
	t.Expires = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = checkin.ParseTicketFile(t.FileContent())
	fmt.Println(errors.Is(err, checkin.ErrExpired))
	_, err = checkin.ParseTicketFile([]byte("-token abc"))
	fmt.Println(errors.Is(err, checkin.ErrBadTicket), errors.Is(err, checkin.ErrTicketFile))
	// Output:
	// {"v":1,"console":"192.0.2.1:47001","fingerprint":"abababababababababababababababababababababababababababababababab","token":"<token>","expires":"2099-01-02T03:04:05Z"}
	// [-ticket-file s1.ticket]
	// file removed: true
	// checkin ticket for 192.0.2.1:47001 (fingerprint abababababababababababababababababababababababababababababababab, token REDACTED)
	// 192.0.2.1:47001 2099-01-02T03:04:05Z same token: true
	// true
	// true true
}
