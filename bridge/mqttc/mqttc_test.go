package mqttc_test

import (
	"context"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/bridgetest"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/configs"
)

// TestTLSClientCertificate connects to mosquitto over TLS with a CA and a
// client certificate generated here; without the certificate it is refused.
func TestTLSClientCertificate(t *testing.T) {
	pki := bridgetest.NewPKI(t)
	b := bridgetest.MosquittoWith(t, bridgetest.MosquittoOptions{CAFile: pki.CA, CertFile: pki.ServerCert, KeyFile: pki.ServerKey, RequireCert: true})
	ctx := context.Background()
	o, err := mqttc.FromConfig(configs.MQTT{Broker: b.URL(true), TLS: configs.TLS{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}}, "tls1", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := mqttc.Connect(ctx, o)
	if err != nil {
		t.Fatalf("TLS with client certificate: %v", err)
	}
	got := make(chan string, 1)
	if err := c.Subscribe(ctx, "t", 1, func(_ string, p []byte) { got <- string(p) }); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, mqttc.Message{Topic: "t", QoS: 1, Payload: []byte("over tls")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "over tls" {
			t.Fatal(m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message over TLS")
	}
	c.Close()

	o2, _ := mqttc.FromConfig(configs.MQTT{Broker: b.URL(true), TLS: configs.TLS{CA: pki.CA}}, "tls2", "")
	o2.Timeout = 2 * time.Second
	if c, err := mqttc.Connect(ctx, o2); err == nil {
		c.Close()
		t.Fatal("connected without a client certificate")
	}
	o3, _ := mqttc.FromConfig(configs.MQTT{Broker: b.URL(true)}, "tls3", "")
	o3.Timeout = 2 * time.Second
	if c, err := mqttc.Connect(ctx, o3); err == nil {
		c.Close()
		t.Fatal("trusted a server certificate from an unknown CA")
	}
}

func TestRunReconnectsWithFreshOptions(t *testing.T) {
	b := bridgetest.Mosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	attempts := 0
	sessions := make(chan int, 10)
	go mqttc.Run(ctx, mqttc.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}, nil, func() mqttc.Options {
		attempts++
		return mqttc.Options{Broker: b.URL(false), ClientID: "r", Timeout: time.Second}
	}, func(ctx context.Context, c *mqttc.Conn) error {
		sessions <- attempts
		select {
		case <-c.Lost():
		case <-ctx.Done():
		}
		return nil
	})
	first := <-sessions
	b.Stop()
	time.Sleep(300 * time.Millisecond)
	b.Start()
	select {
	case second := <-sessions:
		if second <= first {
			t.Fatalf("attempts %d then %d", first, second)
		}
	case <-ctx.Done():
		t.Fatal("no new session after the broker came back")
	}
}
