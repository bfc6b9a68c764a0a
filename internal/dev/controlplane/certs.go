package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the key material of one local control plane: a CA, the
// apiserver's serving certificate, an admin client certificate in
// system:masters, and the service-account signing key.
//
// The CA's key is kept too (ca.key, 0600, next to the admin key that
// already grants everything), so that a local tool can issue more client
// certificates, e.g. a kubelet's system:node:<name> (hack/e2e-node.sh).
type pki struct {
	CAFile, CAKeyFile               string
	ServingCertFile, ServingKeyFile string
	AdminCertFile, AdminKeyFile     string
	SAKeyFile, SAPubFile            string

	CAPEM, AdminCertPEM, AdminKeyPEM []byte
}

// loadOrCreatePKI reuses the key material in dir when it is complete, so a
// restarted local system keeps its kubeconfig valid, and creates it
// otherwise.
func loadOrCreatePKI(dir string) (*pki, error) {
	p := &pki{
		CAFile:          filepath.Join(dir, "ca.crt"),
		CAKeyFile:       filepath.Join(dir, "ca.key"),
		ServingCertFile: filepath.Join(dir, "apiserver.crt"),
		ServingKeyFile:  filepath.Join(dir, "apiserver.key"),
		AdminCertFile:   filepath.Join(dir, "admin.crt"),
		AdminKeyFile:    filepath.Join(dir, "admin.key"),
		SAKeyFile:       filepath.Join(dir, "sa.key"),
		SAPubFile:       filepath.Join(dir, "sa.pub"),
	}
	if p.complete() {
		return p, p.read()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pki dir: %w", err)
	}
	now := time.Now()
	caKey, err := newKey()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "gpuspace-local-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	if err := writeCert(p.CAFile, caDER); err != nil {
		return nil, err
	}
	if err := writeKey(p.CAKeyFile, caKey); err != nil {
		return nil, err
	}

	serving := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	if err := issue(serving, ca, caKey, p.ServingCertFile, p.ServingKeyFile); err != nil {
		return nil, err
	}
	admin := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "gpuspace-admin", Organization: []string{"system:masters"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := issue(admin, ca, caKey, p.AdminCertFile, p.AdminKeyFile); err != nil {
		return nil, err
	}

	saKey, err := newKey()
	if err != nil {
		return nil, err
	}
	if err := writeKey(p.SAKeyFile, saKey); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, fmt.Errorf("marshal service-account public key: %w", err)
	}
	if err := os.WriteFile(p.SAPubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return nil, fmt.Errorf("write service-account public key: %w", err)
	}
	return p, p.read()
}

func (p *pki) complete() bool {
	for _, f := range []string{p.CAFile, p.ServingCertFile, p.ServingKeyFile, p.AdminCertFile, p.AdminKeyFile, p.SAKeyFile, p.SAPubFile} {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

func (p *pki) read() error {
	var err error
	if p.CAPEM, err = os.ReadFile(p.CAFile); err != nil {
		return fmt.Errorf("read CA: %w", err)
	}
	if p.AdminCertPEM, err = os.ReadFile(p.AdminCertFile); err != nil {
		return fmt.Errorf("read admin certificate: %w", err)
	}
	if p.AdminKeyPEM, err = os.ReadFile(p.AdminKeyFile); err != nil {
		return fmt.Errorf("read admin key: %w", err)
	}
	return nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func issue(tmpl, ca *x509.Certificate, caKey crypto.Signer, certFile, keyFile string) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("issue %s: %w", tmpl.Subject.CommonName, err)
	}
	if err := writeCert(certFile, der); err != nil {
		return err
	}
	return writeKey(keyFile, key)
}

func writeCert(path string, der []byte) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
