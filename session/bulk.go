package session

import (
	"context"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
)

// BulkOptions tune ConnectAll.
type BulkOptions struct {
	// Concurrency bounds the sessions in Connecting at once; 0 means
	// Config.Concurrency, else DefaultConcurrency.
	Concurrency int
	// OnStart, when set, is called with each session as soon as it is
	// created, before it leaves Connecting (to read its events, for
	// instance). It must not block.
	OnStart func(*Session)
	// Connect are the options of every session (ConnectWith).
	Connect ConnectOptions
}

// BulkResult is the outcome of one host of ConnectAll.
type BulkResult struct {
	Host discovery.Host
	// Session is the host's session: Running (the caller closes it),
	// Failed or Closed.
	Session *Session
	// Result is the session's result when it left Connecting.
	Result Result
	// Took is the time from the session's start to Running or Failed.
	Took time.Duration
}

// ConnectAll connects to every host with at most Concurrency sessions in
// Connecting at once, and sends one BulkResult per host as each leaves
// Connecting, in that order. The channel has room for every result, so a
// reader that stops early blocks nothing; it is closed after the last
// result. ctx bounds Connecting only, as in ConnectWith: sessions that
// reach Running stay Running until closed (Session.Close, Client.Close or
// Client.Shutdown). Hosts not yet started when ctx ends get a Failed
// result without a session's work.
//
// Shared credentials are proved on one host before the others use them,
// and credentials that one host refuses are tried on no other host (see
// Config.Authenticator): a wrong password makes one failed logon per run,
// not one per host.
func (c *Client) ConnectAll(ctx context.Context, hosts []discovery.Host, o BulkOptions) <-chan BulkResult {
	n := o.Concurrency
	if n <= 0 {
		n = c.cfg.Concurrency
	}
	if n <= 0 {
		n = DefaultConcurrency
	}
	out := make(chan BulkResult, len(hosts))
	sem := make(chan struct{}, n)
	go func() {
		defer close(out)
		done := make(chan struct{}, len(hosts))
		for _, h := range hosts {
			acquired := false
			select {
			case sem <- struct{}{}:
				acquired = true
			case <-ctx.Done():
			}
			s := c.ConnectWith(ctx, h, o.Connect)
			if o.OnStart != nil {
				o.OnStart(s)
			}
			go func() {
				<-s.Ready()
				if acquired {
					<-sem
				}
				r := s.Result()
				took := time.Since(r.Started)
				if !r.Ready.IsZero() {
					took = r.Ready.Sub(r.Started)
				} else if !r.Ended.IsZero() {
					took = r.Ended.Sub(r.Started)
				}
				out <- BulkResult{Host: h, Session: s, Result: r, Took: took}
				done <- struct{}{}
			}()
		}
		for range hosts {
			<-done
		}
	}()
	return out
}
