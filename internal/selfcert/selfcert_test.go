package selfcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	c, err := New("test", time.Hour, "10.1.2.3", "jump.example", "", "JUMP.example", "[::1]")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Leaf
	if k, ok := l.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("key %T", l.PublicKey)
	}
	if len(l.IPAddresses) != 2 || l.IPAddresses[0].String() != "10.1.2.3" || l.IPAddresses[1].String() != "::1" || len(l.DNSNames) != 1 {
		t.Fatalf("SANs: %v %v", l.IPAddresses, l.DNSNames)
	}
	if err := l.VerifyHostname("10.1.2.3"); err != nil {
		t.Fatal(err)
	}
	if err := l.VerifyHostname("other.example"); err == nil {
		t.Fatal("valid for a name not given")
	}
	sum := sha256.Sum256(c.Certificate[0])
	fp := Fingerprint(c.Certificate[0])
	if strings.ReplaceAll(strings.ToLower(fp), ":", "") != hex.EncodeToString(sum[:]) || len(fp) != 95 {
		t.Fatalf("fingerprint %s", fp)
	}
}
