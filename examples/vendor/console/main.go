// Command console is a minimal vendor console written against
// lanconnect's public packages alone: it discovers computers with NetBIOS,
// shows those that match a filter as they are found, and connects to each
// one, asking for other credentials on the terminal when the given ones
// are refused. It runs until interrupted, then closes every session and
// waits for their cleanup.
//
//	console -user 'CORP\helpdesk' -applet dist/acme.exe -console 10.0.0.5:0 'pc-*'
//
// The password comes from the LC_PASSWORD environment variable or the
// terminal. Like every discovery with default targets, run it only on a
// network you are allowed to scan.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/netbios"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
)

func main() {
	user := flag.String("user", "", `account, DOMAIN\user`)
	appletPath := flag.String("applet", "", "the applet to copy and start")
	consoleAddr := flag.String("console", "", "address:port the targets reach this console at for the check-in")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := setup(ctx, *user, *appletPath, *consoleAddr, strings.Join(flag.Args(), " ")); err != nil {
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
}

func setup(ctx context.Context, user, appletPath, consoleAddr, filter string) error {
	f, err := discovery.ParseFilter(filter)
	if err != nil {
		return err
	}
	creds, err := adauth.Parse(user, os.Getenv("LC_PASSWORD"))
	if err != nil {
		return err
	}
	applet, err := deploy.AppletFromFile("acme.exe", "1.0", appletPath)
	if err != nil {
		return err
	}
	targets, _, err := netbios.LocalTargets(24)
	if err != nil {
		return err
	}
	cfg := session.Config{
		Discoverers:   []discovery.Discoverer{&netbios.Discoverer{Targets: targets}},
		Credentials:   creds,
		CheckinListen: "0.0.0.0:0", // the ticket then carries the address on the route to each target
		ConsoleAddr:   consoleAddr,
	}
	if err := standard.Apply(&cfg, standard.Options{Applet: applet}); err != nil {
		return err
	}
	return run(ctx, cfg, f, os.Stdout, terminalPrompt(os.Stdin, os.Stderr))
}

// run connects to every host that f shows, printing each session's
// states, until ctx ends; then it closes the sessions and waits for their
// cleanup (at most a minute).
func run(ctx context.Context, cfg session.Config, f discovery.Filter, out io.Writer, prompt adauth.PromptFunc) error {
	c, err := session.New(cfg)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	print := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format, args...)
	}
	var wg sync.WaitGroup
	for ev := range c.Hosts(ctx, f).Events() { // closed when ctx ends
		switch ev.Kind {
		case discovery.Show:
			s := c.ConnectWith(ctx, ev.Host, session.ConnectOptions{Prompt: prompt})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for e := range s.Events() { // closed after Failed or Closed
					if e.Kind == session.EventState {
						print("%-16s %-10s %-12s %s\n", e.Name, e.State, e.Step, e.Diagnosis)
					}
				}
			}()
		case discovery.Complete:
			print("discovery complete\n")
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err = c.Shutdown(sctx) // closes every session and waits for its cleanup
	wg.Wait()
	return err
}

// terminalPrompt asks for an account and password on in. An empty
// account cancels. It is shared by the sessions, one question at a time.
func terminalPrompt(in io.Reader, out io.Writer) adauth.PromptFunc {
	var mu sync.Mutex
	r := bufio.NewReader(in)
	return func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%s (%s) refused %s: %s\nAccount (empty to give up): ", req.Host.Name, req.Addr, req.Account, req.Diagnosis)
		user, err := r.ReadString('\n')
		user = strings.TrimSpace(user)
		if user == "" {
			return adauth.Credentials{}, errors.Join(adauth.ErrPromptCanceled, err)
		}
		fmt.Fprint(out, "Password (shown): ")
		pw, _ := r.ReadString('\n')
		return adauth.Parse(user, strings.TrimRight(pw, "\r\n"))
	}
}
