package krb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/oiweiwei/gokrb5.fork/v9/client"
	"github.com/oiweiwei/gokrb5.fork/v9/config"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/errorcode"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/etypeID"
	"github.com/oiweiwei/gokrb5.fork/v9/iana/nametype"
	"github.com/oiweiwei/gokrb5.fork/v9/messages"
	"github.com/oiweiwei/gokrb5.fork/v9/types"
)

// Config says how a Cache finds and reaches KDCs. The zero value locates
// KDCs through DNS SRV records with the system resolver and gives each
// KDC connection 5 s.
type Config struct {
	// KDC is an explicit KDC address (host or host:port, port 88 by
	// default); it wins over every other source. The -kdc flag sets it.
	KDC string
	// KRB5Conf is a krb5.conf path: its [realms] kdc lines come first,
	// and its [libdefaults] encryption types and lifetimes are used.
	// Empty means none; /etc/krb5.conf and KRB5_CONFIG are never read
	// implicitly.
	KRB5Conf string
	// DC is the domain controller given for LDAP (host or address), the
	// last source tried.
	DC string
	// Resolver looks up SRV records and KDC names; nil means
	// net.DefaultResolver. A lab or a console that knows the domain's DNS
	// server passes a resolver that dials it.
	Resolver *net.Resolver
	// Dial connects to a KDC; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds each KDC connection (connect, request, reply); 0
	// means 5 s.
	Timeout time.Duration
	// Etypes, when set, are the only encryption types offered (IANA
	// numbers: 18 AES256, 17 AES128, 23 RC4-HMAC), as permitted_enctypes
	// in krb5.conf. Empty means the library's defaults (AES and RC4).
	Etypes []int32
	// Logger receives debug messages; nil discards them. Secrets are
	// never logged.
	Logger *slog.Logger
}

// Cache holds one TGT per credential and one service ticket per SPN per
// credential, shared by every host and transport that uses it: a bulk
// run of a thousand hosts makes one AS exchange, and one TGS exchange per
// computer and service. The caller owns it (there is no global cache) and
// closes it. It is safe for concurrent use: a credential's AS exchange
// is made once while its other users wait for it (and take its result,
// a KDC that did not answer included); its TGS exchanges for
// different SPNs run in parallel, and callers that need the same SPN at
// once share one exchange; different credentials never wait for each
// other.
//
// It does not renew tickets in the background: an expired TGT is
// replaced by a new AS exchange at the next use (or fails for a ccache
// credential), an expired service ticket by a new TGS exchange. It does
// not read KRB5CCNAME, KRB5_CONFIG or /etc/krb5.conf by itself.
type Cache struct {
	cfg Config
	log *slog.Logger
	n   counters

	confOnce sync.Once
	conf     *config.Config
	confErr  error

	mu      sync.Mutex
	entries map[string]*entry
	closed  bool
}

// entry is the state of one credential.
type entry struct {
	// mu guards the entry and is held during the AS exchange (every use
	// needs the TGT), not during TGS exchanges: those run in parallel,
	// one per SPN at a time (tgs).
	mu   sync.Mutex
	cred Credential // resolved
	ctx  context.Context
	log  exchangeLog // of the AS exchange
	kdcs KDCs
	conf *config.Config
	cl   *client.Client
	tgt  *ticket
	svc  map[string]*ticket
	// tgs holds the TGS exchange under way for an SPN (lower case); a
	// caller that needs the same ticket waits for it.
	tgs map[string]*tgsFlight
	// failed is the diagnosis of a failed AS exchange with a password or
	// key. It is kept: the same wrong secret is not sent again (each try
	// counts towards the account's lockout).
	failed error
	// asErr is the failure of the last AS exchange that the KDC did not
	// judge (unreachable, clock skew), asEnd when it ended: callers that
	// were already waiting for that exchange take its result instead of
	// trying again one after the other. Later callers try again.
	asErr error
	asEnd time.Time
}

// tgsFlight is one TGS exchange under way: done is closed once t or err
// is set.
type tgsFlight struct {
	done chan struct{}
	t    *ticket
	err  error
}

// ticket is a ticket with its session key and times.
type ticket struct {
	tkt   messages.Ticket
	key   types.EncryptionKey
	flags asn1.BitString
	auth  time.Time
	start time.Time
	end   time.Time
	renew time.Time
}

// expiryMargin: a ticket this close to its end time is replaced before
// use, so that it does not expire during a logon.
const expiryMargin = 2 * time.Minute

func (t *ticket) valid(now time.Time) bool {
	return t != nil && now.Add(expiryMargin).Before(t.end)
}

// NewCache returns an empty cache with cfg.
func NewCache(cfg Config) *Cache {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &Cache{cfg: cfg, log: log, entries: map[string]*entry{}}
}

// ErrClosed is returned by a closed Cache.
var ErrClosed = errors.New("krb: cache closed")

// Close forgets every ticket and key. Later calls fail with ErrClosed.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for _, e := range c.entries {
		e.mu.Lock()
		if e.cl != nil {
			e.cl.Destroy()
		}
		e.tgt, e.svc = nil, nil
		e.mu.Unlock()
	}
	c.entries = nil
	return nil
}

// Stats returns the KDC message counters so far.
func (c *Cache) Stats() Stats {
	return Stats{ASExchanges: c.n.asExchanges.Load(), ASReqs: c.n.asReqs.Load(), TGSReqs: c.n.tgsReqs.Load(), Dials: c.n.dials.Load()}
}

// entry returns the state of cred, creating it.
func (c *Cache) entry(cred Credential) (*entry, error) {
	key, err := cred.validate()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	e := c.entries[key]
	if e == nil {
		e = &entry{cred: cred.resolved(), svc: map[string]*ticket{}, tgs: map[string]*tgsFlight{}}
		c.entries[key] = e
	}
	return e, nil
}

// TGT makes sure cred has a valid TGT, with one AS exchange if it has
// none (none for a ccache credential, whose TGT is read from the
// ccache). After a failed AS exchange with a password or key it returns
// the same diagnosis again without contacting the KDC: a wrong password
// is sent once per Cache.
func (c *Cache) TGT(ctx context.Context, cred Credential) error {
	e, err := c.entry(cred)
	if err != nil {
		return err
	}
	since := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	return c.tgtLocked(ctx, e, since)
}

// dialer returns a KDC dialer that counts into c and records into log,
// for exchanges run under ctx().
func (c *Cache) dialer(log *exchangeLog, ctx func() context.Context) *kdcDialer {
	return &kdcDialer{timeout: c.cfg.Timeout, ctx: ctx, dial: c.cfg.Dial, n: &c.n, log: log}
}

// tgtLocked is TGT with e.mu held, for a caller that began waiting for
// it at since.
func (c *Cache) tgtLocked(ctx context.Context, e *entry, since time.Time) error {
	if e.failed != nil {
		return e.failed
	}
	if e.tgt.valid(time.Now()) {
		return nil
	}
	if e.asErr != nil && e.asEnd.After(since) {
		return e.asErr
	}
	if e.cl == nil {
		kdcs, err := c.Locate(ctx, e.cred.Realm)
		if err != nil {
			return err
		}
		conf, err := c.clientConfig(kdcs)
		if err != nil {
			return err
		}
		e.kdcs, e.conf = kdcs, conf
		settings := []func(*client.Settings){
			client.DisablePAFXFAST(true),
			client.Dialer(c.dialer(&e.log, func() context.Context { return e.ctx })),
		}
		cr := e.cred
		switch {
		case cr.Password != "":
			e.cl = client.NewWithPassword(cr.User, cr.Realm, cr.Password, conf, settings...)
		case len(cr.NTHash) > 0:
			onlyEtype(conf, etypeID.RC4_HMAC)
			e.cl = client.NewWithEncryptionKey(cr.User, cr.Realm, types.EncryptionKey{KeyType: etypeID.RC4_HMAC, KeyValue: cr.NTHash}, conf, settings...)
		case len(cr.AESKey) > 0:
			et := etypeID.AES256_CTS_HMAC_SHA1_96
			if len(cr.AESKey) == 16 {
				et = etypeID.AES128_CTS_HMAC_SHA1_96
			}
			onlyEtype(conf, et)
			e.cl = client.NewWithEncryptionKey(cr.User, cr.Realm, types.EncryptionKey{KeyType: et, KeyValue: cr.AESKey}, conf, settings...)
		case cr.Keytab != nil:
			e.cl = client.NewWithKeytab(cr.User, cr.Realm, cr.Keytab, conf, settings...)
		case cr.CCache != nil:
			cl, err := client.NewFromCCacheOptionalTGT(cr.CCache, conf, settings...)
			if err != nil {
				return &Error{Op: "read ccache", Principal: cr.principal(), Kind: ErrBadInput, Err: err}
			}
			e.cl = cl
		}
	}
	if e.cred.CCache != nil {
		t, err := ccacheTGT(e.cred)
		if err != nil {
			return err
		}
		e.tgt = t
		return nil
	}
	e.ctx = ctx
	e.log.reset()
	c.n.asExchanges.Add(1)
	t0 := time.Now()
	req, err := messages.NewASReqForTGT(e.cred.Realm, e.conf, e.cl.Credentials.CName())
	if err != nil {
		return &Error{Op: "AS exchange", Principal: e.cred.principal(), Kind: ErrBadInput, Err: err}
	}
	rep, err := e.cl.ASExchange(e.cred.Realm, req, 0)
	if err != nil {
		d := c.diagnose(ctx, e, &e.log, "AS exchange", "", err)
		var ke *Error
		switch {
		case errors.As(d, &ke) && ke.Kind != ErrKDCUnreachable && ke.Kind != ErrClockSkew:
			// The KDC judged the credential: do not send it again.
			e.failed = d
		case !errors.Is(d, context.Canceled) && !errors.Is(d, context.DeadlineExceeded):
			// Not this caller's context: the others waiting share it.
			e.asErr, e.asEnd = d, time.Now()
		}
		return d
	}
	p := rep.DecryptedEncPart
	e.tgt = &ticket{tkt: rep.Ticket, key: p.Key, flags: p.Flags, auth: p.AuthTime, start: p.StartTime, end: p.EndTime, renew: p.RenewTill}
	c.log.Debug("krb TGT", "principal", e.cred.principal(), "kdc", e.kdcs.Addrs, "source", e.kdcs.Source, "ends", p.EndTime, "took", time.Since(t0))
	return nil
}

// onlyEtype restricts conf to one encryption type: an NT hash is an
// RC4-HMAC key, and an AES key serves one AES type only.
func onlyEtype(conf *config.Config, et int32) {
	conf.LibDefaults.DefaultTktEnctypeIDs = []int32{et}
	conf.LibDefaults.DefaultTGSEnctypeIDs = []int32{et}
	conf.LibDefaults.PermittedEnctypeIDs = []int32{et}
}

// ccacheTGT returns the TGT of the credential's realm from its ccache.
func ccacheTGT(cr Credential) (*ticket, error) {
	cc := cr.CCache
	ent, ok := cc.GetEntry(types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", cr.Realm}})
	if !ok {
		return nil, &Error{Op: "read ccache", Principal: cr.principal(), Kind: ErrBadInput, Err: fmt.Errorf("no TGT for %s in the ccache", cr.Realm)}
	}
	var tkt messages.Ticket
	if err := tkt.Unmarshal(ent.Ticket); err != nil {
		return nil, &Error{Op: "read ccache", Principal: cr.principal(), Kind: ErrBadInput, Err: err}
	}
	t := &ticket{tkt: tkt, key: ent.Key, flags: ent.TicketFlags, auth: ent.AuthTime, start: ent.StartTime, end: ent.EndTime, renew: ent.RenewTill}
	if !t.valid(time.Now()) {
		return nil, &Error{Op: "read ccache", Principal: cr.principal(), Kind: ErrBadInput, Err: fmt.Errorf("the ccache's TGT expired at %v (run kinit again)", ent.EndTime)}
	}
	return t, nil
}

// serviceTicket returns a valid ticket for spn, from the cache or with
// one TGS exchange (after an AS exchange if cred has no TGT yet), and the
// entry it belongs to. TGS exchanges for different SPNs run in parallel,
// each on a connection and exchange log of its own, so that a bulk run's
// hosts do not queue behind each other's KDC round trips; callers that
// need the same SPN at once share one exchange and its result.
func (c *Cache) serviceTicket(ctx context.Context, cred Credential, spn string) (*entry, *ticket, error) {
	if spn == "" || !strings.Contains(spn, "/") {
		return nil, nil, fmt.Errorf("%w: SPN %q", ErrBadInput, spn)
	}
	e, err := c.entry(cred)
	if err != nil {
		return nil, nil, err
	}
	key := strings.ToLower(spn)
	since := time.Now()
	for {
		e.mu.Lock()
		if e.svc == nil {
			e.mu.Unlock()
			return nil, nil, ErrClosed
		}
		if t := e.svc[key]; t.valid(time.Now()) {
			e.mu.Unlock()
			return e, t, nil
		}
		f := e.tgs[key]
		if f == nil {
			break // with e.mu held
		}
		e.mu.Unlock()
		select {
		case <-f.done:
			ended := errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)
			if f.err != nil && !(ended && ctx.Err() == nil) {
				return nil, nil, f.err
			}
			// The ticket is cached now (or the cache was closed), or
			// the exchange ended with its caller's context, not ours:
			// look again.
		case <-ctx.Done():
			return nil, nil, &Error{Op: "TGS exchange", Principal: e.cred.principal(), SPN: spn, Kind: ErrKDCUnreachable, Err: ctx.Err()}
		}
	}
	if err := c.tgtLocked(ctx, e, since); err != nil {
		e.mu.Unlock()
		return nil, nil, err
	}
	f := &tgsFlight{done: make(chan struct{})}
	e.tgs[key] = f
	tgt, conf, realm, cname := e.tgt, e.conf, e.cred.Realm, e.cl.Credentials.CName()
	e.mu.Unlock()

	f.t, f.err = c.tgsExchange(ctx, e, tgt, conf, realm, cname, spn)
	e.mu.Lock()
	delete(e.tgs, key)
	if f.err == nil && e.svc != nil {
		e.svc[key] = f.t
	}
	e.mu.Unlock()
	close(f.done)
	if f.err != nil {
		return nil, nil, f.err
	}
	return e, f.t, nil
}

// tgsExchange asks the KDC for a ticket for spn with tgt, on a connection
// of its own: the library's client made here only sends (its dialer
// records into this exchange's log and follows ctx), holds no secret, and
// is destroyed when the exchange is over.
func (c *Cache) tgsExchange(ctx context.Context, e *entry, tgt *ticket, conf *config.Config, realm string, cname types.PrincipalName, spn string) (*ticket, error) {
	var log exchangeLog
	t0 := time.Now()
	cl := client.NewWithPassword(cname.PrincipalNameString(), realm, "", conf,
		client.DisablePAFXFAST(true), client.Dialer(c.dialer(&log, func() context.Context { return ctx })))
	defer cl.Destroy() // the library keeps a copy of the ticket it got; ours is the one kept
	princ := types.NewPrincipalName(nametype.KRB_NT_SRV_INST, spn)
	req, err := messages.NewTGSReq(cname, realm, conf, tgt.tkt, tgt.key, princ, false)
	if err != nil {
		return nil, &Error{Op: "TGS exchange", Principal: e.cred.principal(), SPN: spn, Kind: ErrBadInput, Err: err}
	}
	_, rep, err := cl.TGSExchange(req, realm, tgt.tkt, tgt.key, 0)
	if err != nil {
		return nil, c.diagnose(ctx, e, &log, "TGS exchange", spn, err)
	}
	p := rep.DecryptedEncPart
	t := &ticket{tkt: rep.Ticket, key: p.Key, flags: p.Flags, auth: p.AuthTime, start: p.StartTime, end: p.EndTime, renew: p.RenewTill}
	c.log.Debug("krb service ticket", "principal", e.cred.principal(), "spn", spn, "ends", p.EndTime, "took", time.Since(t0))
	return t, nil
}

// ServiceTicket makes sure cred has a valid ticket for spn (see SPN),
// with at most one TGS exchange, and returns its end time. The ticket
// itself stays in the cache; Initiator uses it.
func (c *Cache) ServiceTicket(ctx context.Context, cred Credential, spn string) (time.Time, error) {
	_, t, err := c.serviceTicket(ctx, cred, spn)
	if err != nil {
		return time.Time{}, err
	}
	return t.end, nil
}

// diagnose turns a failed exchange into an *Error with its diagnosis,
// from the KRB-ERROR that the KDC sent (recorded by the dialer) or from
// the failure to reach any KDC.
func (c *Cache) diagnose(ctx context.Context, e *entry, log *exchangeLog, op, spn string, err error) error {
	ke, kdc, answered, dialErr := log.snapshot()
	out := &Error{Op: op, Principal: e.cred.principal(), SPN: spn, KDC: kdc, Err: err}
	if ctx.Err() != nil && ke == nil {
		out.Kind, out.Err = ErrKDCUnreachable, ctx.Err()
		return out
	}
	if ke == nil {
		if !answered {
			out.Kind = ErrKDCUnreachable
			if dialErr != nil {
				out.Err = dialErr
			}
			return out
		}
		// The KDC answered but the reply did not decrypt with our key:
		// for an AS exchange without pre-authentication that is a wrong
		// password.
		if op == "AS exchange" && strings.Contains(err.Error(), "password") {
			out.Kind = ErrWrongPassword
			return out
		}
		out.Kind = ErrKDC
		return out
	}
	out.Code = ke.ErrorCode
	c.log.Debug("krb KRB-ERROR", "op", op, "principal", e.cred.principal(), "spn", spn, "code", ke.ErrorCode, "etext", ke.EText, "edata", fmt.Sprintf("%x", ke.EData))
	out.Err = fmt.Errorf("%s", strings.TrimSpace(errorcode.Lookup(ke.ErrorCode)+" "+ke.EText))
	switch ke.ErrorCode {
	case errorcode.KRB_AP_ERR_SKEW:
		out.Kind = ErrClockSkew
		st := ke.STime.Add(time.Duration(ke.Susec) * time.Microsecond)
		out.Skew = time.Until(st).Round(time.Second)
	case errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN:
		out.Kind = ErrPrincipalUnknown
	case errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN:
		if op == "AS exchange" {
			out.Kind = ErrKDC
		} else {
			out.Kind = ErrSPNUnknown
		}
	case errorcode.KDC_ERR_PREAUTH_FAILED, errorcode.KRB_AP_ERR_BAD_INTEGRITY:
		out.Kind = ErrWrongPassword
	case errorcode.KDC_ERR_ETYPE_NOSUPP:
		out.Kind = ErrNoCommonEtype
	case errorcode.KDC_ERR_KEY_EXPIRED:
		out.Kind = ErrAccountExpired
	case errorcode.KDC_ERR_CLIENT_REVOKED, errorcode.KDC_ERR_POLICY:
		out.Status = edataStatus(ke.EData)
		switch out.Status {
		case statusAccountLockedOut:
			out.Kind = ErrAccountLocked
		case statusAccountDisabled:
			out.Kind = ErrAccountDisabled
		case statusAccountExpired, statusPasswordExpired, statusPasswordMustChange:
			out.Kind = ErrAccountExpired
		default:
			if ke.ErrorCode == errorcode.KDC_ERR_CLIENT_REVOKED {
				out.Kind = ErrAccount
			} else {
				out.Kind = ErrKDC
			}
		}
	default:
		out.Kind = ErrKDC
	}
	return out
}

// edataStatus returns the NT status in a KRB-ERROR's e-data, or 0. The
// e-data is a METHOD-DATA (a sequence of PA-DATA, as Windows and Samba
// send it) whose PA-DATA of type 3 (PA-PW-SALT) carries KERB-EXT-ERROR:
// the status, little endian, and two reserved words (MS-KILE 2.2.1); or
// a KERB-ERROR-DATA whose data-type 3 carries the same.
func edataStatus(ed []byte) uint32 {
	if len(ed) == 0 {
		return 0
	}
	var pas types.PADataSequence
	if err := pas.Unmarshal(ed); err == nil {
		for _, pa := range pas {
			if pa.PADataType == 3 && len(pa.PADataValue) >= 4 {
				return binary.LittleEndian.Uint32(pa.PADataValue)
			}
		}
	}
	var ked struct {
		DataType  int    `asn1:"explicit,tag:1"`
		DataValue []byte `asn1:"optional,explicit,tag:2"`
	}
	if _, err := asn1.Unmarshal(ed, &ked); err == nil && ked.DataType == 3 && len(ked.DataValue) >= 4 {
		return binary.LittleEndian.Uint32(ked.DataValue)
	}
	return 0
}
