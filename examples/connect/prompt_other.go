//go:build !linux

package main

import (
	"fmt"
	"io"

	"golang.org/x/term"
)

// readHidden writes prompt, then reads a line without echo. Echo goes off
// only once the read starts: what is typed before that may show.
func readHidden(fd int, w io.Writer, prompt string) ([]byte, error) {
	fmt.Fprint(w, prompt)
	return term.ReadPassword(fd)
}
