package main

import (
	"context"
	"strings"
	"testing"
)

// TestUsage checks the flag errors that run reports before it opens
// anything.
func TestUsage(t *testing.T) {
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"-listen", "10.1.2.3:8080"}, "-allow-remote"},
		{[]string{"-listen", "0.0.0.0:8080"}, "-allow-remote"},
		{[]string{"-listen", ":8080", "-allow-remote"}, "-origin"},
		{[]string{"-listen", "nonsense"}, "-listen"},
		{[]string{"-filter", "10.0.0"}, "-filter"},
		{[]string{"-rate", "0"}, "-rate"},
		{[]string{"-no-netbios"}, "no discovery source"},
		{[]string{"-ldap-ca", "x.pem"}, "-ldap"},
		{[]string{"-ldap", "ldaps://dc", "-ldap-bind", "kerberos"}, "-ldap-bind"},
		{[]string{"-user", `a\b\c`}, "-user"},
		{[]string{"-no-such-flag"}, "no-such-flag"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb strings.Builder
			code := run(context.Background(), c.args, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
				listening: func(string) { t.Fatal("the console started") }})
			if code != 2 || !strings.Contains(errb.String(), c.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errb.String(), c.msg)
			}
		})
	}
}
