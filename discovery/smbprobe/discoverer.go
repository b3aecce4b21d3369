package smbprobe

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// Discoverer probes every address of its targets on TCP 445 and sends one
// Host, with source discovery.SourceSMB, for each host that answers with an
// NTLM challenge. Hosts that refuse, time out or answer garbage are
// skipped (and logged at debug level): on a LAN most addresses are empty.
//
// Addresses are generated lazily, so memory stays flat whatever the range.
// The zero Discoverer probes nothing.
type Discoverer struct {
	// Targets are the addresses to probe.
	Targets []discovery.AddrRange
	// Prober does one probe; the zero Prober is the default (445, 3 s).
	Prober Prober
	// Concurrency bounds probes in flight; zero means 64.
	Concurrency int
	// Rate bounds new connections per second; zero means 500. It keeps a
	// sweep of a large range from flooding the LAN or a firewall's state
	// table.
	Rate float64
	// Logger receives one debug line per skipped address. Nil discards.
	Logger *slog.Logger
}

// Name returns "smb".
func (d *Discoverer) Name() string { return string(discovery.SourceSMB) }

// Discover implements discovery.Discoverer. It returns nil after probing
// every address, or ctx's error when cancelled (once every probe in flight
// has stopped).
func (d *Discoverer) Discover(ctx context.Context, out chan<- discovery.Host) error {
	conc := d.Concurrency
	if conc <= 0 {
		conc = 64
	}
	rate := d.Rate
	if rate <= 0 {
		rate = 500
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, r := range d.Targets {
		for a := range r.All() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case sem <- struct{}{}:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				info, err := d.Prober.Probe(ctx, a)
				if err != nil {
					log.Debug("smb probe skipped", "addr", a.String(), "err", err)
					return
				}
				select {
				case out <- HostOf(info, time.Now()):
				case <-ctx.Done():
				}
			}()
		}
	}
	wg.Wait()
	return ctx.Err()
}

// HostOf maps a probe result to a discovery.Host seen at t.
func HostOf(info Info, t time.Time) discovery.Host {
	srv := info.Server
	h := discovery.Host{
		Name:      srv.NetBIOSName,
		Addrs:     []netip.Addr{info.Addr},
		Dialect:   smbconn.Dialect(info.Dialect).String(),
		Sources:   []discovery.Source{discovery.SourceSMB},
		FirstSeen: t,
		LastSeen:  t,
	}
	// Host.DNSName is a fully qualified name, and Merge joins hosts that
	// share it. A workgroup computer reports its bare host name here (Samba
	// reports the machine's host name, shared by every instance on it), so
	// only a qualified name is kept.
	if strings.Contains(srv.DNSName, ".") {
		h.DNSName = srv.DNSName
	}
	signing := info.SigningRequired
	h.SigningRequired = &signing
	if srv.DomainJoined {
		h.Domain = srv.NetBIOSDomain
	}
	var major, minor uint8
	var build uint16
	if n, _ := fmt.Sscanf(srv.OSVersion, "%d.%d.%d", &major, &minor, &build); n == 3 {
		h.OSVersion = versionString(major, minor, build)
		h.OS = ProductName(major, minor, build)
	}
	return h
}
