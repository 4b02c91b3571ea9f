package modbusserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/modbusserver"
)

// mbaps is a test PKI with the server's certificate and the pool of the
// CA that signs client certificates.
func mbaps(t testing.TB) (*bridgetest.PKI, tls.Certificate, *x509.CertPool) {
	t.Helper()
	pki := bridgetest.NewPKI(t)
	srvCert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := modbus.LoadCertPool(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	return &pki, srvCert, pool
}

// TestMBAPS serves Modbus over TLS: a client with a certificate from the
// CA reads, one without is refused.
func TestMBAPS(t *testing.T) {
	pki, srvCert, pool := mbaps(t)
	p, _ := bridgetest.NewPlantFromConfig(testConfig(), 0)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(bridgetest.FreePort(t)))
	s, err := modbusserver.New(modbusserver.Config{Listen: addr, Map: testMap, TLSCert: &srvCert, TLSClientCAs: pool}, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitListening(t, addr)
	cliCert, _ := tls.LoadX509KeyPair(pki.ClientCert, pki.ClientKey)
	c, _ := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp+tls://" + addr, Timeout: 2 * time.Second, TLSClientCert: &cliCert, TLSRootCAs: pool})
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetUnitId(1)
	if v, err := c.ReadFloat32(0, modbus.HOLDING_REGISTER); err != nil || v != 42.5 {
		t.Fatalf("MBAPS read %v %v", v, err)
	}
	anon, _ := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp+tls://" + addr, Timeout: time.Second, TLSRootCAs: pool})
	if err := anon.Open(); err == nil {
		if _, err := anon.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); err == nil {
			t.Fatal("served a client without a certificate")
		}
		anon.Close()
	}
}
