package adauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/smbconn"
)

// ErrCredentialsRefused is the Kind of an *AuthError that LockoutGuard
// returns without trying the credentials: another computer of the same
// run refused them (wrong password, or an account that is locked,
// disabled or expired), and every further try would count towards the
// account's lockout. Its Err is that computer's *AuthError.
var ErrCredentialsRefused = errors.New("adauth: credentials refused elsewhere in this run, not tried")

// CredentialsRefused reports whether err means that the computer refused
// the account's credentials in a way that would count towards a domain
// lockout if they were tried elsewhere: a logon failure (unknown user,
// wrong password, STATUS_ACCESS_DENIED at logon) or an account that is
// locked out, disabled or expired, whose password expired or must change,
// or that has an account restriction (STATUS_ACCOUNT_RESTRICTION). It is
// also true for ErrCredentialsRefused itself.
//
// It is false for restrictions that are specific to the computer (logon
// hours, allowed workstations, the network logon right), for "not an
// administrator" (the logon succeeded), for a guest session, and for
// every network or protocol failure.
func CredentialsRefused(err error) bool {
	var ae *AuthError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Kind {
	case ErrCredentialsRefused, ErrLogonFailure:
		return true
	case ErrAccountRestricted:
		var st smbconn.NTStatus
		if !errors.As(err, &st) {
			return false
		}
		switch st {
		case smbconn.StatusAccountLockedOut, smbconn.StatusAccountDisabled, smbconn.StatusAccountExpired,
			smbconn.StatusPasswordExpired, smbconn.StatusPasswordMustChange, smbconn.StatusAccountRestriction:
			return true
		}
	}
	return false
}

// logonSucceeded reports whether err (or its absence) proves that the
// credentials were accepted by a computer: the logon worked and only a
// later admin check failed.
func logonSucceeded(err error) bool {
	if err == nil {
		return true
	}
	var ae *AuthError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Step {
	case StepAccount, StepAdminShare, StepSCM:
		return true
	}
	return false
}

// LockoutGuard keeps one run of authentications (a bulk connect, or a
// console's lifetime) from locking an account out by trying a wrong
// password on many computers:
//
//   - Credentials not yet known to work are tried on one computer at a
//     time. Every other authentication with the same credentials waits
//     for that first logon's outcome; once a logon with them has
//     succeeded, they fan out. With SMBAuthenticator that is once the
//     computer proved it knows the session key (its ADMIN$ check passed,
//     signed or sealed), before the SCM check; with another
//     Authenticator, when its Authenticate returns.
//   - After a refusal (see CredentialsRefused), the credentials are not
//     sent to any other computer: Authenticate fails at once with
//     ErrCredentialsRefused (diagnosis "credentials-refused"), which
//     ShouldPrompt allows to prompt for. This holds also for credentials
//     that worked before (the password was changed or the account locked
//     meanwhile); authentications already in flight finish.
//   - Prompts caused by the same refusal are joined (Prompt): one prompt
//     for the whole run, whose answer every waiting authentication gets.
//     The answer is new credentials, treated the same way.
//
// An outcome that says nothing about the credentials (unreachable,
// timeout, protocol error, guest session) lets the next waiting
// authentication try alone. "Not administrator" is a successful logon and
// does not refuse the credentials.
//
// The zero value is ready to use. It is safe for concurrent use. It keeps
// only a keyed hash of each secret (its key is random per guard), never
// the secret itself, except for a prompt's answer, which it hands to the
// authentications waiting for that prompt. It does not reset refused
// credentials over time: only a prompt answer makes them worth one more
// try.
type LockoutGuard struct {
	mu      sync.Mutex
	key     []byte
	creds   map[credKey]*credState
	flights map[credKey]*promptFlight
}

type credKey [32]byte

type credState struct {
	good    bool
	refused error // the refusing computer's *AuthError
	pilot   bool  // an authentication with these credentials is in flight alone
	changed chan struct{}
}

type promptFlight struct {
	done   chan struct{}
	answer Credentials
	err    error
}

func (g *LockoutGuard) keyOf(c Credentials) credKey {
	if g.key == nil {
		g.key = make([]byte, 32)
		_, _ = rand.Read(g.key)
	}
	m := hmac.New(sha256.New, g.key)
	pw, _ := c.Password()
	for _, s := range []string{c.Domain, c.User, pw, string(c.NTHash())} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	var k credKey
	copy(k[:], m.Sum(nil))
	return k
}

func (g *LockoutGuard) state(k credKey) *credState {
	if g.creds == nil {
		g.creds = map[credKey]*credState{}
	}
	st := g.creds[k]
	if st == nil {
		st = &credState{changed: make(chan struct{})}
		g.creds[k] = st
	}
	return st
}

// Wrap returns an Authenticator that runs a under the guard's rules. A nil
// a means a zero SMBAuthenticator.
func (g *LockoutGuard) Wrap(a Authenticator) Authenticator {
	if a == nil {
		a = &SMBAuthenticator{}
	}
	return &guarded{g: g, a: a}
}

type guarded struct {
	g *LockoutGuard
	a Authenticator
}

func (ga *guarded) Authenticate(ctx context.Context, host string, creds Credentials) (*Grant, error) {
	g := ga.g
	g.mu.Lock()
	k := g.keyOf(creds)
	for {
		st := g.state(k)
		switch {
		case st.refused != nil:
			cause := st.refused
			g.mu.Unlock()
			return nil, refusedHere(host, creds.Account(), cause)
		case st.good:
			g.mu.Unlock()
			gr, err := ga.a.Authenticate(ctx, host, creds)
			if CredentialsRefused(err) {
				// Good once, refused now (the password was changed or
				// the account locked meanwhile): stop here too.
				g.mu.Lock()
				st.good, st.refused = false, err
				g.mu.Unlock()
			}
			return gr, err
		case !st.pilot:
			st.pilot = true
			g.mu.Unlock()
			return ga.pilot(ctx, k, host, creds)
		}
		ch := st.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, &AuthError{Addr: host, Account: creds.Account(), Step: StepLogon, Kind: ErrCanceled, Err: ctx.Err(),
				Diagnosis: diag.Diagnosis{Code: diag.Canceled, Summary: "The authentication was canceled while another computer was trying the same credentials first."}}
		}
		g.mu.Lock()
	}
}

// pilot tries creds alone and records the outcome for the others. An
// authenticator that reports its logon's success (SMBAuthenticator does,
// through notifyLogon, after its ADMIN$ check and before its SCM check)
// releases the others then: the credentials are proven, and what remains
// (the SCM check's RPC bind, which on a fresh Samba target waits about a
// second for its RPC daemons) need not be serial.
func (ga *guarded) pilot(ctx context.Context, k credKey, host string, creds Credentials) (gr *Grant, err error) {
	g := ga.g
	ctx = context.WithValue(ctx, logonNotifyKey{}, func(c Credentials) {
		g.mu.Lock()
		defer g.mu.Unlock()
		st := g.state(k)
		if g.keyOf(c) != k || st.good || st.refused != nil {
			return
		}
		st.good = true
		close(st.changed)
		st.changed = make(chan struct{})
	})
	settled := false
	defer func() {
		g.mu.Lock()
		st := g.state(k)
		st.pilot = false
		if settled {
			switch {
			case CredentialsRefused(err):
				st.refused = err
			case logonSucceeded(err):
				st.good = true
			}
		}
		close(st.changed)
		st.changed = make(chan struct{})
		g.mu.Unlock()
	}()
	gr, err = ga.a.Authenticate(ctx, host, creds)
	settled = true
	return gr, err
}

func refusedHere(host, account string, cause error) *AuthError {
	other := "another computer"
	var ae *AuthError
	if errors.As(cause, &ae) && ae.Addr != "" {
		other = ae.Addr
		if ae.Kind == ErrCredentialsRefused {
			// Name the computer that really refused them.
			var inner *AuthError
			if errors.As(ae.Err, &inner) && inner.Addr != "" {
				other = inner.Addr
			}
		}
	}
	who := "these credentials"
	if account != "" {
		who = "the credentials of " + account
	}
	return &AuthError{Addr: host, Account: account, Step: StepLogon, Kind: ErrCredentialsRefused, Retryable: true, Err: cause,
		Diagnosis: diag.Diagnosis{Code: diag.CredentialsRefused,
			Summary: "Not tried on " + host + ": " + other + " refused " + who + " in this run, and every further failed logon counts towards locking the account out.",
			Fix:     "Enter the right password (or another administrator account); check on a domain controller that the account is not locked out, disabled or expired."}}
}

// Prompt returns a PromptFunc that joins prompts caused by the same
// refused credentials: the first one asks p, every other one waits for
// and returns its answer (or its error). Later prompts for the same
// refusal get the same answer without asking; when that answer was
// refused in turn, they join the prompt about the answer. A prompt that
// failed (canceled) is asked again by the next refusal. A prompt whose
// reason is not a refusal is passed to p unchanged. A nil p returns nil.
//
// An answer is new credentials for the guard even when the technician
// typed a password that was refused before: an answer is one more try,
// alone, as for any new credentials.
func (g *LockoutGuard) Prompt(p PromptFunc) PromptFunc {
	if p == nil {
		return nil
	}
	return func(ctx context.Context, req PromptRequest) (Credentials, error) {
		k, ok := g.refusalKey(req.Reason)
		if !ok {
			return p(ctx, req)
		}
		g.mu.Lock()
		if g.flights == nil {
			g.flights = map[credKey]*promptFlight{}
		}
		// Follow earlier answers: an answer that was refused in turn
		// leads to the prompt about it.
		for hops := 0; hops < 64; hops++ {
			f := g.flights[k]
			if f == nil {
				break
			}
			select {
			case <-f.done:
			default:
				g.mu.Unlock()
				select {
				case <-f.done:
					return f.answer, f.err
				case <-ctx.Done():
					return Credentials{}, ctx.Err()
				}
			}
			if f.err != nil {
				break // that prompt was canceled: ask again
			}
			ak := g.keyOf(f.answer)
			if g.state(ak).refused == nil {
				g.mu.Unlock()
				return f.answer, nil
			}
			k = ak
		}
		f := &promptFlight{done: make(chan struct{})}
		g.flights[k] = f
		g.mu.Unlock()

		ans, err := p(ctx, req)
		g.mu.Lock()
		f.answer, f.err = ans, err
		if err == nil {
			// A typed answer is worth one try, alone, even if equal to
			// credentials refused before.
			if st := g.state(g.keyOf(ans)); st.refused != nil {
				st.refused = nil
			}
		}
		close(f.done)
		g.mu.Unlock()
		return ans, err
	}
}

// refusalKey returns the key of the credentials whose refusal err is. The
// key is found through the refused state: a prompt's Reason carries the
// account, not the secret, so the guard remembers which key each refusal
// error belongs to.
func (g *LockoutGuard) refusalKey(reason error) (credKey, bool) {
	if !CredentialsRefused(reason) {
		return credKey{}, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, st := range g.creds {
		// A refusal is the recorded error itself, or an
		// ErrCredentialsRefused that wraps it.
		if st.refused != nil && errors.Is(reason, st.refused) {
			return k, true
		}
	}
	return credKey{}, false
}

type logonNotifyKey struct{}

// notifyLogon tells a LockoutGuard's pilot (if ctx comes from one) that a
// logon with creds has succeeded, so that the authentications waiting for
// the same credentials start now. It does nothing otherwise.
func notifyLogon(ctx context.Context, creds Credentials) {
	if f, ok := ctx.Value(logonNotifyKey{}).(func(Credentials)); ok {
		f(creds)
	}
}
