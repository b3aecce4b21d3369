package adauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
)

// PromptRequest is what a console's prompt is told when the SDK needs
// credentials for a computer.
type PromptRequest struct {
	// Addr is the address (or name, as dialled) of the computer the
	// credentials are for.
	Addr string
	// Session is the ID of the session that asks, and Host the computer
	// it connects to. Package session sets them for its sessions;
	// CredentialSource alone leaves them empty.
	Session string
	Host    discovery.Host
	// Attempt counts prompts for this authentication, from 1.
	Attempt int
	// Account is the account that was tried last (DOMAIN\user, no secret),
	// empty when none was.
	Account string
	// Reason is why credentials are asked for: the *AuthError of the last
	// attempt, or ErrNoCredentials when there were none to try.
	Reason error
	// Diagnosis is Reason's diagnosis, for the dialog.
	Diagnosis diag.Diagnosis
}

// PromptFunc asks the technician for credentials. It returns
// ErrPromptCanceled (or any error) to give up; the error ends the
// authentication. It must honour ctx.
type PromptFunc func(ctx context.Context, req PromptRequest) (Credentials, error)

// DefaultMaxPrompts is CredentialSource.MaxPrompts when zero.
const DefaultMaxPrompts = 3

// CredentialSource supplies credentials for one authentication: the
// console's current credentials first, then, while ShouldPrompt allows, a
// prompt the console supplies, at most MaxPrompts times. The zero value
// has no credentials and no prompt, so Authenticate fails with
// ErrNoCredentials.
//
// It does not remember credentials between calls: a console that wants
// the answer of a prompt reused takes it from the returned Grant.
type CredentialSource struct {
	// Current are the console's current credentials; zero means none.
	Current Credentials
	// Prompt asks the technician; nil means never prompt.
	Prompt PromptFunc
	// MaxPrompts bounds the prompts; 0 means DefaultMaxPrompts, a
	// negative value means no prompt.
	MaxPrompts int
}

// Authenticate runs a against addr with the credentials of src, as
// described on CredentialSource. It returns the first Grant, or the last
// error: an *AuthError (with Step StepPrompt and Kind ErrPromptCanceled
// or ErrNoCredentials when the prompt ended it; its Err then wraps the
// prompt's error and the last authentication error, if any).
func (src CredentialSource) Authenticate(ctx context.Context, a Authenticator, addr string) (*Grant, error) {
	host := addr
	if a == nil {
		a = &SMBAuthenticator{}
	}
	maxPrompts := src.MaxPrompts
	if maxPrompts == 0 {
		maxPrompts = DefaultMaxPrompts
	}
	var lastErr error
	account := ""
	if !src.Current.IsZero() {
		g, err := a.Authenticate(ctx, host, src.Current)
		if err == nil {
			return g, nil
		}
		lastErr, account = err, src.Current.Account()
		if !ShouldPrompt(err) {
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		if src.Prompt == nil || attempt > maxPrompts {
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, &AuthError{Addr: host, Step: StepPrompt, Kind: ErrNoCredentials,
				Diagnosis: diag.Diagnosis{Code: diag.NoCredentials, Summary: "No credentials are available for " + host + ".", Fix: "Enter an administrator account for this computer."},
				Err:       ErrNoCredentials}
		}
		if err := ctx.Err(); err != nil {
			return nil, &AuthError{Addr: host, Step: StepPrompt, Kind: ErrCanceled, Diagnosis: diag.Diagnosis{Code: diag.Canceled, Summary: "The authentication was canceled."}, Err: err}
		}
		req := PromptRequest{Addr: addr, Attempt: attempt, Account: account, Reason: lastErr}
		if lastErr == nil {
			req.Reason = ErrNoCredentials
			req.Diagnosis = diag.Diagnosis{Code: diag.NoCredentials, Summary: "No credentials are available for " + host + ".", Fix: "Enter an administrator account for this computer."}
		} else {
			var ae *AuthError
			if errors.As(lastErr, &ae) {
				req.Diagnosis = ae.Diagnosis
			}
		}
		creds, err := src.Prompt(ctx, req)
		if err != nil {
			kind := ErrPromptCanceled
			if ctx.Err() != nil {
				kind = ErrCanceled
			}
			cause := err
			if lastErr != nil {
				cause = fmt.Errorf("%w (after: %w)", err, lastErr)
			}
			return nil, &AuthError{Addr: host, Account: account, Step: StepPrompt, Kind: kind,
				Diagnosis: diag.Diagnosis{Code: diag.PromptCanceled, Summary: "The credential prompt was canceled."}, Err: cause}
		}
		g, err := a.Authenticate(ctx, host, creds)
		if err == nil {
			return g, nil
		}
		lastErr, account = err, creds.Account()
		if !ShouldPrompt(err) {
			return nil, err
		}
	}
}
