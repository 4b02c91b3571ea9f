package bridgetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a test certificate authority with a server certificate for
// 127.0.0.1/localhost and a client certificate, as PEM files. Client makes
// more client certificates, with a Modbus/TCP Security role or without.
type PKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string

	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

// MBAPSRoleOID is the role extension of a Modbus/TCP Security client
// certificate: one ASN.1 UTF8String.
var MBAPSRoleOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 50316, 802, 1}

// Client makes a client certificate for cn signed by the CA, carrying the
// MBAPS role extension when role is not "", and returns its PEM files.
func (p *PKI) Client(t testing.TB, cn, role string) (cert, key string) {
	t.Helper()
	var ext []pkix.Extension
	if role != "" {
		v, err := asn1.MarshalWithParams(role, "utf8")
		if err != nil {
			t.Fatal(err)
		}
		ext = append(ext, pkix.Extension{Id: MBAPSRoleOID, Value: v})
	}
	p.serial++
	cert = filepath.Join(p.dir, fmt.Sprintf("client-%d.pem", p.serial))
	key = filepath.Join(p.dir, fmt.Sprintf("client-%d.key", p.serial))
	p.leaf(t, p.serial, cn, x509.ExtKeyUsageClientAuth, ext, cert, key)
	return cert, key
}

func (p *PKI) leaf(t testing.TB, serial int64, cn string, usage x509.ExtKeyUsage, ext []pkix.Extension, certPath, keyPath string) {
	t.Helper()
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtraExtensions: ext}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "PRIVATE KEY", kder)
}

// NewPKI generates a CA, a server and a client certificate in a temp dir.
func NewPKI(t testing.TB) PKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mkrt test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := PKI{CA: filepath.Join(dir, "ca.pem"), dir: dir, ca: ca, caKey: caKey, serial: 3}
	writePEM(t, p.CA, "CERTIFICATE", caDER)
	p.ServerCert, p.ServerKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	p.ClientCert, p.ClientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	p.leaf(t, 2, "localhost", x509.ExtKeyUsageServerAuth, nil, p.ServerCert, p.ServerKey)
	p.leaf(t, 3, "scada-client", x509.ExtKeyUsageClientAuth, nil, p.ClientCert, p.ClientKey)
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
