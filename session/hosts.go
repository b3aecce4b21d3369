package session

import (
	"context"

	"github.com/lanconnect/lanconnect/discovery"
)

// scan is one run of the Client's discoverers: one discovery.Merge fanned
// out by one discovery.Broadcaster to every view that Hosts made while it
// was the current scan.
type scan struct {
	ctx context.Context // ends when the scan is stopped
	b   *discovery.Broadcaster
	// stop ends the scan: it cancels the discoverers and the
	// Broadcaster, which closes the scan's views.
	stop context.CancelFunc
	// ended is closed when every discoverer of the scan has returned
	// (the Merge stream is closed).
	ended chan struct{}
}

// startScanLocked starts a new scan of the discoverers, after prev (nil
// or stopped) has ended: its discoverers are started only once prev's
// have returned, so that two sweeps never overlap (a NetBIOS scanner
// bound to port 137, one directory bind at a time). c.mu is held.
func (c *Client) startScanLocked(prev *scan) *scan {
	ctx, stop := context.WithCancel(context.Background())
	s := &scan{ctx: ctx, stop: stop, ended: make(chan struct{})}
	relay := make(chan discovery.Update)
	s.b = discovery.NewBroadcaster(ctx, relay)
	c.scans++
	c.log.Debug("discovery started", "scan", c.scans, "sources", len(c.cfg.Discoverers))
	go func() {
		defer close(s.ended)
		defer close(relay)
		if prev != nil {
			<-prev.ended // prev was stopped: its discoverers honour ctx
		}
		if ctx.Err() != nil {
			return
		}
		// Once ctx is done the Broadcaster no longer reads: drain Merge
		// until it closes, which is after every discoverer returned.
		for u := range discovery.Merge(ctx, c.cfg.Discoverers...) {
			select {
			case relay <- u:
			case <-ctx.Done():
			}
		}
	}()
	return s
}

// Hosts returns a live view of the hosts that the Client's discovery finds
// and that match f. Every view of a Client shares one discovery: the first
// Hosts call (or Rescan) starts it, and later views get every host already
// known, in its latest state, then the live updates, each view under its
// own filter. So a console with many pages runs one sweep and one
// directory bind, however many pages are open.
//
// The view's SetFilter changes the filter at any time, during the scan and
// after it. The view receives Show and Hide events for the hosts, one
// SourceFinished event per discoverer, and, when every discoverer has
// returned, one discovery.Complete event; it then stays open for filter
// changes. Its events channel is closed when ctx is done, when Rescan
// replaces the discovery (call Hosts again for a view of the new one), or
// when the Client is closed. After Close, Hosts returns a view whose
// events channel is closed at once, with no event.
//
// The discovery does not run under ctx: a view's context ending does not
// stop it, and it goes on to its end for the next view. It ends when its
// discoverers have returned (its hosts are kept in memory for later
// views), or when Rescan, Close or Shutdown stops it. Connect may be
// called for any host at any time, discovery running or not.
func (c *Client) Hosts(ctx context.Context, f discovery.Filter) *discovery.View {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		// A view that has already ended: its events channel is closed
		// with no event.
		done, cancel := context.WithCancel(ctx)
		cancel()
		return discovery.NewLiveView(done, nil, f)
	}
	if c.scan == nil {
		c.scan = c.startScanLocked(nil)
	}
	s := c.scan
	c.mu.Unlock()
	// The view ends with ctx or with its scan (Rescan, Close).
	vctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(s.ctx, cancel)
	context.AfterFunc(vctx, func() { unhook() })
	return s.b.NewView(vctx, f)
}

// Rescan stops the Client's discovery, if one is running, and starts a
// new one at once: its discoverers start as soon as the previous ones have
// returned, never beside them. Views of the previous discovery are closed
// (their events channels close); call Hosts again for views of the new
// one, which start with no host. Rescan also starts the first discovery
// before any view asks for it. It does not wait for anything, and it
// returns ErrClientClosed after Close or Shutdown.
func (c *Client) Rescan() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClientClosed
	}
	prev := c.scan
	if prev != nil {
		prev.stop()
	}
	c.scan = c.startScanLocked(prev)
	return nil
}

// stopScan stops the current discovery for Close and Shutdown and
// returns its end (nil when none ran). c.mu is not held.
func (c *Client) stopScan() <-chan struct{} {
	c.mu.Lock()
	s := c.scan
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	s.stop()
	return s.ended
}
