package krbtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oiweiwei/gokrb5.fork/v9/iana/etypeID"
	"github.com/oiweiwei/gokrb5.fork/v9/types"

	"github.com/lanconnect/lanconnect/internal/krb"
	"github.com/lanconnect/lanconnect/internal/krb/krbtest"
)

// TestKDCIssuesTickets: internal/krb's cache gets a TGT and a service
// ticket from the KDC (one AS and one TGS exchange), the ticket decrypts
// with the KDC's keytab, and an unknown SPN is refused with a KRB-ERROR
// that the cache diagnoses.
func TestKDCIssuesTickets(t *testing.T) {
	for _, et := range []int32{etypeID.AES256_CTS_HMAC_SHA1_96, etypeID.RC4_HMAC} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		kdc, err := krbtest.Start(ctx, "127.0.0.1:0", "lab.example", et)
		if err != nil {
			t.Fatal(err)
		}
		defer kdc.Close()
		kdc.AddUser("tester", "not-a-real-secret-3")
		if err := kdc.AddService("host/pc.lab.example"); err != nil {
			t.Fatal(err)
		}
		c := krb.NewCache(krb.Config{KDC: kdc.Addr(), Timeout: 5 * time.Second})
		defer c.Close()
		cred := krb.Credential{User: "tester", Realm: "LAB.EXAMPLE", Password: "not-a-real-secret-3"}
		end, err := c.ServiceTicket(ctx, cred, "host/pc.lab.example")
		if err != nil {
			t.Fatalf("etype %d: service ticket: %v", et, err)
		}
		if time.Until(end) < time.Hour {
			t.Errorf("etype %d: ticket ends %v", et, end)
		}
		if as, tgs := kdc.Exchanges(); as != 1 || tgs != 1 {
			t.Errorf("etype %d: %d AS and %d TGS exchanges, want 1 and 1", et, as, tgs)
		}
		kt := kdc.Keytab()
		if _, _, err := kt.GetEncryptionKey(types.NewPrincipalName(2, "host/pc.lab.example"), "LAB.EXAMPLE", 1, et); err != nil {
			t.Errorf("etype %d: keytab: %v", et, err)
		}
		if _, err := c.ServiceTicket(ctx, cred, "host/other.lab.example"); !errors.Is(err, krb.ErrSPNUnknown) {
			t.Errorf("etype %d: unknown SPN: %v, want ErrSPNUnknown", et, err)
		}
	}
}
