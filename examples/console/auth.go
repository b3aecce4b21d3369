package main

import (
	"crypto/subtle"
	"net/http"
	"net/url"
)

// Technician authentication. The console holds credentials that open
// every computer of the LAN, and on a shared jump host every local user
// can reach its loopback port. So the console makes a secret at launch
// (256 random bits) and prints a URL that carries it; that output is the
// technician's alone. The first request with the secret in its query gets
// a cookie with the same secret (HttpOnly, SameSite=Strict, Secure over
// HTTPS) and a redirect to the same URL without it, so that the secret
// leaves the address bar and the history. Every other request, page,
// stream, action and static file alike, must carry the cookie. Secrets are
// compared in constant time.
//
// What it does not do: it does not tell technicians apart (whoever has the
// URL or the cookie is the technician) and it does not expire before the
// console stops. Cookies are not isolated by port, so a web server on
// another port of the same host name could read the cookie if the
// technician's browser visits it; the secret changes at every launch.

const (
	secretParam  = "key"
	minSecretLen = 32 // hex digits: 128 bits
)

// newSecret returns a fresh launch secret (256 bits, hex).
func newSecret() string { return randomID(32) }

// launchURL is the URL the console prints: the page, with the secret.
func launchURL(origin, secret string) string {
	return origin + "/?" + secretParam + "=" + url.QueryEscape(secret)
}

func (s *server) cookieName() string {
	if s.secure {
		return "__Host-lanconnect-console" // Secure, Path=/, no Domain
	}
	return "lanconnect-console"
}

func (s *server) isSecret(v string) bool {
	return subtle.ConstantTimeCompare([]byte(v), []byte(s.secret)) == 1
}

// authorized lets a request through when it carries the console's cookie.
// A GET with the secret in its query gets the cookie and a redirect to
// the same URL without the secret. Otherwise it writes 401 (no secret at
// all) or 403 (a wrong one) and returns false.
func (s *server) authorized(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	if key, ok := q[secretParam]; ok {
		if r.Method != http.MethodGet || len(key) != 1 || !s.isSecret(key[0]) {
			s.log.Warn("request with a wrong console secret refused", "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "wrong console key: open the URL the console printed at launch")
			return false
		}
		http.SetCookie(w, &http.Cookie{
			Name: s.cookieName(), Value: s.secret, Path: "/",
			HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode,
		})
		q.Del(secretParam)
		u := *r.URL
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
		return false
	}
	c, err := r.Cookie(s.cookieName())
	if err != nil {
		writeError(w, http.StatusUnauthorized, "not signed in: open the URL the console printed at launch")
		return false
	}
	if !s.isSecret(c.Value) {
		writeError(w, http.StatusForbidden, "stale or wrong console cookie: open the URL the console printed at launch")
		return false
	}
	return true
}
