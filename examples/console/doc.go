// Command console is a small web console that shows how to embed
// lanconnect: a live host list, a filter, Connect, a credential dialog and
// session states.
//
//	console [-listen 127.0.0.1:8080] [-user ACCOUNT] [lanscan's discovery flags] [TARGET...]
//
// It serves one page on loopback (another address needs -allow-remote, and
// is then HTTPS, with -tls-cert/-tls-key or an ephemeral self-signed
// certificate whose fingerprint it prints). At launch it prints the URL to
// open, which carries a secret made for this launch; every request needs
// that secret's cookie, so other users of a shared machine cannot use the
// console's credentials.
//
// The console gives its discoverers to its session.Client, which runs them
// once and fans the merged stream out to every page (Client.Hosts); the
// page's Rescan button runs them again for every page (Client.Rescan).
// The page opens one Server-Sent
// Events stream that carries its host list (a live discovery.View under
// the filter typed in the page), every session's state, and the credential prompts of the
// sessions it started; actions are JSON POSTs checked for Origin and a
// per-page CSRF token. The static files are embedded; the JavaScript has
// no framework and no build step. See docs/console.md.
package main
