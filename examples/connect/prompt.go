package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/internal/cliutil"
)

// promptTerminal asks for an account and a hidden password on the
// terminal. An empty account cancels.
func promptTerminal(ctx context.Context, e env, out *printer, req adauth.PromptRequest) (adauth.Credentials, error) {
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.inBar {
		fmt.Fprintln(out.w)
		out.inBar = false
	}
	w := e.stderr
	if req.Account != "" {
		fmt.Fprintf(w, "\n%s refused %s: %s\n", cliutil.Safe(req.Addr), cliutil.Safe(req.Account), cliutil.Safe(req.Diagnosis.String()))
	} else {
		fmt.Fprintf(w, "\n%s needs administrator credentials.\n", cliutil.Safe(req.Addr))
	}
	type answer struct {
		c   adauth.Credentials
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		fmt.Fprint(w, "Account (DOMAIN\\user, empty to give up): ")
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		user := strings.TrimSpace(line)
		if err != nil && user == "" || user == "" {
			ch <- answer{err: adauth.ErrPromptCanceled}
			return
		}
		pw, err := readPassword(e, w, "Password: ")
		fmt.Fprintln(w)
		if err != nil {
			ch <- answer{err: fmt.Errorf("%w: %v", adauth.ErrPromptCanceled, err)}
			return
		}
		c, err := adauth.Parse(user, string(pw))
		ch <- answer{c, err}
	}()
	select {
	case a := <-ch:
		return a.c, a.err
	case <-ctx.Done():
		return adauth.Credentials{}, ctx.Err()
	}
}

// readPassword writes prompt to w and reads a line, without echo from a
// terminal.
func readPassword(e env, w io.Writer, prompt string) ([]byte, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return readHidden(int(f.Fd()), w, prompt)
	}
	fmt.Fprint(w, prompt)
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	return []byte(strings.TrimRight(line, "\r\n")), err
}
