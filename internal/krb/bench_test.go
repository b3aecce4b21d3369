package krb_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/krb"
	"github.com/lanconnect/lanconnect/internal/smbconn"
	"github.com/lanconnect/lanconnect/internal/testlab"
)

// BenchmarkLabSMBLogon measures an SMB session setup to a joined member
// with the domain Administrator, Kerberos (ticket cached: the cost per
// host once the TGT and the host's ticket are there) against NTLM (passed
// through to the DC by the member), in the same run on the same lab.
func BenchmarkLabSMBLogon(b *testing.B) {
	lab := testlab.New(b, testlab.Options{DC: &testlab.DCSpec{}, Targets: []testlab.TargetSpec{{DomainMember: true, NoNmbd: true}}})
	dc, m := lab.DC, lab.Targets[0]
	ctx := context.Background()
	res := labResolver(dc)
	dialer := &net.Dialer{Resolver: res, Timeout: 5 * time.Second}
	cache := krb.NewCache(krb.Config{Timeout: labKDCTimeout, Resolver: res})
	defer cache.Close()
	cred := krb.Credential{User: dc.Admin.User, Realm: dc.Realm, Password: dc.Admin.Password}
	spn, err := krb.SPN(krb.CIFS, m.FQDN)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if _, err := cache.ServiceTicket(ctx, cred, spn); err != nil {
		b.Fatal(err)
	}
	b.Logf("first ticket (AS + TGS exchanges): %v", time.Since(t0))
	b.Run("kerberos", func(b *testing.B) {
		for b.Loop() {
			in, err := cache.Initiator(ctx, cred, spn)
			if err != nil {
				b.Fatal(err)
			}
			s, err := smbconn.Dial(ctx, m.FQDN, smbconn.Auth{User: dc.Admin.User}, smbconn.Options{Initiator: in, Dialer: dialer})
			if err != nil {
				b.Fatal(err)
			}
			_ = s.Close()
		}
		if st := cache.Stats(); st.ASExchanges != 1 || st.TGSReqs != 1 {
			b.Errorf("KDC traffic %+v, want 1 AS exchange and 1 TGS-REQ whatever b.N", st)
		}
	})
	b.Run("ntlm", func(b *testing.B) {
		for b.Loop() {
			s, err := smbconn.Dial(ctx, m.Addr.String(), smbconn.Auth{User: dc.Admin.User, Domain: dc.Domain, Password: dc.Admin.Password}, smbconn.Options{Dialer: dialer})
			if err != nil {
				b.Fatal(err)
			}
			_ = s.Close()
		}
	})
}
