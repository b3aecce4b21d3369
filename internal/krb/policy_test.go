package krb

import (
	"errors"
	"testing"
)

func TestChoose(t *testing.T) {
	const fqdn = "ws01.corp.example"
	for _, tc := range []struct {
		name string
		c    Choice
		want Method
		err  error
	}{
		{"auto domain with DNS name", Choice{Account: `CORP\admin`, DNSName: fqdn}, MethodKerberos, nil},
		{"auto UPN with DNS name", Choice{Policy: PolicyAuto, Account: "admin@corp.example", DNSName: fqdn}, MethodKerberos, nil},
		{"auto IP only", Choice{Account: `CORP\admin`, DNSName: "10.0.0.5"}, MethodNTLM, nil},
		{"auto short name", Choice{Account: `CORP\admin`, DNSName: "WS01"}, MethodNTLM, nil},
		{"auto local account", Choice{Account: `.\admin`, DNSName: fqdn}, MethodNTLM, nil},
		{"auto computer-local account", Choice{Account: `WS01\admin`, DNSName: fqdn, NetBIOSName: "ws01"}, MethodNTLM, nil},
		{"auto bare user", Choice{Account: "admin", DNSName: fqdn}, MethodNTLM, nil},
		{"auto workgroup", Choice{Account: `WG\admin`, DNSName: fqdn, Workgroup: true}, MethodNTLM, nil},
		{"auto IP only, NTLM blocked", Choice{Account: `CORP\admin`, NTLMBlocked: true}, "", ErrNTLMBlocked},
		{"auto domain, NTLM blocked", Choice{Account: `CORP\admin`, DNSName: fqdn, NTLMBlocked: true}, MethodKerberos, nil},
		{"kerberos", Choice{Policy: PolicyKerberos, Account: `CORP\admin`, DNSName: fqdn}, MethodKerberos, nil},
		{"kerberos IP only", Choice{Policy: PolicyKerberos, Account: `CORP\admin`, DNSName: "10.0.0.5"}, "", ErrNeedsDNSName},
		{"kerberos local", Choice{Policy: PolicyKerberos, Account: `.\admin`, DNSName: fqdn}, "", ErrNotDomainAccount},
		{"ntlm", Choice{Policy: PolicyNTLM, Account: `CORP\admin`, DNSName: fqdn}, MethodNTLM, nil},
		{"ntlm blocked", Choice{Policy: PolicyNTLM, Account: `CORP\admin`, DNSName: fqdn, NTLMBlocked: true}, "", ErrNTLMBlocked},
		{"bad policy", Choice{Policy: "negotiate", Account: `CORP\admin`}, "", ErrBadInput},
	} {
		got, err := Choose(tc.c)
		if got != tc.want || (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: Choose = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
	if p, err := ParsePolicy(" Kerberos "); p != PolicyKerberos || err != nil {
		t.Errorf("ParsePolicy: %q %v", p, err)
	}
}
