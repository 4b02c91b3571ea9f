package web_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
)

// TestTLS: with bridge.web.tls the bridge serves the HMI over HTTPS only,
// and the session cookie is Secure and __Host- prefixed.
func TestTLS(t *testing.T) {
	pki := bridgetest.NewPKI(t)
	cfg, state := tankDemo(t)
	cfg.Bridge.Web.TLS.Cert, cfg.Bridge.Web.TLS.Key = pki.ServerCert, pki.ServerKey
	p, err := bridgetest.NewPlantFromConfig(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := runBridge(t, t.Context(), cfg, p, state)
	url := b.Status().Web
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("URL %s", url)
	}
	ca, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var resp *http.Response
	for i := 0; ; i++ {
		resp, err = c.Post(url+"api/login", "application/json", strings.NewReader(`{"user":"viewer","password":"viewer-demo"}`))
		if err == nil || i > 100 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := resp.Cookies()
	if resp.StatusCode != 200 || len(ck) != 1 || !ck[0].Secure || !strings.HasPrefix(ck[0].Name, "__Host-") {
		t.Fatalf("login over TLS: %d %+v", resp.StatusCode, ck)
	}
	plain := strings.Replace(url, "https://", "http://", 1)
	if resp, err := http.Get(plain); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP answered %d", resp.StatusCode)
		}
	}
}
