package netbios

import (
	"context"

	"github.com/lanconnect/lanconnect/discovery"
)

// Discoverer makes a scan a discovery.Discoverer: it sends one Host per
// node that answers, with source discovery.SourceNetBIOS, as the answer
// arrives. The zero Discoverer scans nothing.
type Discoverer struct {
	// Scanner does the work; nil means a zero Scanner (the defaults).
	Scanner *Scanner
	// Targets is what to sweep and where to broadcast.
	Targets Targets
}

// Name returns "netbios", the name Merge reports for this source.
func (d *Discoverer) Name() string { return string(discovery.SourceNetBIOS) }

// Discover implements discovery.Discoverer with the contract documented
// there: it returns nil when the scan is complete, ctx.Err() when
// cancelled, and an error when the socket cannot be opened.
func (d *Discoverer) Discover(ctx context.Context, out chan<- discovery.Host) error {
	s := d.Scanner
	if s == nil {
		s = &Scanner{}
	}
	results := make(chan Result)
	errc := make(chan error, 1)
	go func() { errc <- s.Scan(ctx, d.Targets, results) }()
	for {
		select {
		case r := <-results:
			select {
			case out <- r.Host():
			case <-ctx.Done():
				// Scan sees ctx too and returns promptly.
				<-errc
				return ctx.Err()
			}
		case err := <-errc:
			return err
		}
	}
}
