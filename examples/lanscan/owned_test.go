package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
)

// countingCloser counts the Close calls of the resource it wraps.
type countingCloser struct {
	io.Closer
	closed int
}

func (c *countingCloser) Close() error {
	c.closed++
	return c.Closer.Close()
}

// TestKerberosCacheClosed: the ticket cache that -ldap-bind kerberos
// opens is closed exactly once when lanscan returns, after a scan whose
// directory failed (nothing answers on loopback port 1) and after a flag
// error found once the cache was made (an account without a name).
func TestKerberosCacheClosed(t *testing.T) {
	t.Setenv("LANCONNECT_PASSWORD", "Pw-not-sent-1")
	for _, c := range []struct {
		name string
		user string
		code int
	}{
		{"scan ends", `LCLAB\tech`, 1},
		{"flag error after the cache was made", `LCLAB\`, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var opened []*countingCloser
			wrap := func(cl io.Closer) io.Closer {
				cc := &countingCloser{Closer: cl}
				opened = append(opened, cc)
				return cc
			}
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code := runOwning(ctx, []string{"-no-netbios", "-no-smb", "-ldap", "ldaps://127.0.0.1:1", "-ldap-dns", "127.0.0.1:1",
				"-ldap-bind", "kerberos", "-user", c.user, "127.0.0.1"}, strings.NewReader(""), &out, &errb, terminalOf(false), wrap)
			if code != c.code || strings.Contains(errb.String(), "Pw-not-sent-1") {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errb.String())
			}
			if len(opened) != 1 {
				t.Fatalf("%d resources opened, want the ticket cache", len(opened))
			}
			if _, ok := opened[0].Closer.(*adauth.Kerberos); !ok || opened[0].closed != 1 {
				t.Fatalf("opened %T, closed %d times; want the *adauth.Kerberos closed once", opened[0].Closer, opened[0].closed)
			}
		})
	}
}
