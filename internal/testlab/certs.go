package testlab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// labCA is a lab's own certificate authority and one server certificate it
// signed.
type labCA struct {
	CAFile, CertFile, KeyFile string
	Pool                      *x509.CertPool
}

// serial returns a random positive 127-bit serial number (Samba's own
// certificates can have negative serials, which Go rejects).
func serial() *big.Int {
	max := new(big.Int).Lsh(big.NewInt(1), 127)
	n, _ := rand.Int(rand.Reader, max)
	return n.Add(n, big.NewInt(1))
}

// newLabCA writes ca.pem, cert.pem and key.pem (0600) into dir: a CA valid
// for a week and a server certificate for the given DNS names and address.
func newLabCA(dir, org string, dnsNames []string, ip netip.Addr) (*labCA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{org}, CommonName: org + " lab CA"},
		NotBefore:             now,
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{org}, CommonName: dnsNames[0]},
		NotBefore:    now,
		NotAfter:     now.Add(7 * 24 * time.Hour),
		DNSNames:     dnsNames,
		IPAddresses:  []net.IP{ip.AsSlice()},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("testlab: %w", err)
	}
	c := &labCA{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
		Pool:     x509.NewCertPool(),
	}
	c.Pool.AddCert(caCert)
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{c.CAFile, "CERTIFICATE", caDER, 0o644},
		{c.CertFile, "CERTIFICATE", der, 0o644},
		{c.KeyFile, "PRIVATE KEY", keyDER, 0o600},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return nil, fmt.Errorf("testlab: %w", err)
		}
	}
	return c, nil
}
