package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// demoStep is one example that `lab demo` runs against the lab. Run is nil
// for a step whose example does not exist yet; the demo says so and goes
// on. To add a step, append to demoSteps.
type demoStep struct {
	Name string
	What string
	Run  func(ctx context.Context, l *testlab.Lab) error
}

// demoSteps are the demo's steps, in order.
var demoSteps = []demoStep{
	{
		Name: "lanscan",
		What: "discover the lab's computers from the client namespace with default targets (examples/lanscan)",
	},
	{
		Name: "lanscan-ad",
		What: "list the DC's computers over LDAPS (examples/lanscan with the directory source)",
	},
	{
		Name: "connect-check",
		What: "ask why each of two targets can or cannot be connected to, changing nothing on them (examples/connect -check)",
	},
	{
		Name: "connect",
		What: "connect to a target with its admin account: copy, launch and check in the applet (examples/connect)",
	},
}

func cmdDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	hold := fs.Bool("hold", false, "after the steps, keep the lab up until Ctrl-C")
	verbose := fs.Bool("v", false, "log progress")
	_ = fs.Parse(args)
	opts := testlab.Options{
		Targets: []testlab.TargetSpec{{}, {}, {Variant: testlab.SigningMandatory}, {Variant: testlab.GuestOnly}},
		DC:      &testlab.DCSpec{Computers: 200},
		Client:  true,
		Logger:  logger(*verbose),
	}
	l, err := startLab(ctx, opts)
	if err != nil {
		return err
	}
	defer closeLab(l)
	fmt.Println("== lanconnect demo lab ==")
	fmt.Print(l.String())
	fmt.Printf("started in %s\n\n", l.Timings())
	pending := 0
	for i, s := range demoSteps {
		if ctx.Err() != nil {
			fmt.Println("interrupted")
			return nil
		}
		fmt.Printf("== step %d/%d: %s: %s\n", i+1, len(demoSteps), s.Name, s.What)
		if s.Run == nil {
			fmt.Println("   not implemented yet, skipped")
			pending++
			continue
		}
		t0 := time.Now()
		if err := s.Run(ctx, l); err != nil {
			fmt.Printf("   FAILED after %v: %v\n", time.Since(t0).Round(time.Millisecond), err)
			return fmt.Errorf("demo step %s: %w", s.Name, err)
		}
		fmt.Printf("   ok (%v)\n", time.Since(t0).Round(time.Millisecond))
	}
	if pending > 0 {
		fmt.Printf("\n%d of %d steps are not implemented yet.\n", pending, len(demoSteps))
	}
	if *hold {
		fmt.Fprintln(os.Stderr, "lab: holding; Ctrl-C tears down")
		<-ctx.Done()
	}
	return nil
}
