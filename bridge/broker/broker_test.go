package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/broker"
	"github.com/mkrt/mkrt/bridge/mqttc"
)

func TestAuthAndReadOnly(t *testing.T) {
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Users: []broker.User{
		{Username: "bridge", Password: "s3cret", Publish: []string{"#"}, Subscribe: []string{"#"}},
		{Username: "viewer", Password: "look", Subscribe: []string{"plant/#"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	connect := func(id, user, pass string) (*mqttc.Conn, error) {
		return mqttc.Connect(ctx, mqttc.Options{Broker: b.URL(), ClientID: id, Username: user, Password: pass, Timeout: 3 * time.Second})
	}
	for _, bad := range [][2]string{{"", ""}, {"bridge", "wrong"}, {"mallory", "s3cret"}, {"viewer", ""}} {
		if c, err := connect("x", bad[0], bad[1]); err == nil {
			c.Close()
			t.Errorf("user %q password %q admitted", bad[0], bad[1])
		}
	}
	rw, err := connect("rw", "bridge", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	ro, err := connect("ro", "viewer", "look")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got := make(chan string, 10)
	if err := ro.Subscribe(ctx, "plant/#", 1, func(topic string, p []byte) { got <- string(p) }); err != nil {
		t.Fatal(err)
	}
	if err := rw.Subscribe(ctx, "cmd/#", 1, func(topic string, p []byte) { got <- "cmd:" + string(p) }); err != nil {
		t.Fatal(err)
	}
	if err := rw.Publish(ctx, mqttc.Message{Topic: "plant/level", QoS: 1, Payload: []byte("1.5")}); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "1.5" {
		t.Fatalf("read-only user read %q", m)
	}
	// the read-only user's publish is refused (MQTT 3.1.1 has no negative
	// PUBACK: the broker drops it or disconnects the client)
	ro.Publish(ctx, mqttc.Message{Topic: "cmd/x", QoS: 1, Payload: []byte("from viewer")})
	rw.Publish(ctx, mqttc.Message{Topic: "cmd/y", QoS: 1, Payload: []byte("from bridge")})
	var seen []string
	timeout := time.After(5 * time.Second)
	for len(seen) < 1 {
		select {
		case m := <-got:
			if m == "cmd:from viewer" {
				t.Fatal("read-only user published a command")
			}
			seen = append(seen, m)
		case <-timeout:
			t.Fatalf("got %v", seen)
		}
	}
	select {
	case m := <-got:
		if m == "cmd:from viewer" {
			t.Fatal("read-only user published a command")
		}
	case <-time.After(200 * time.Millisecond):
	}
}

func TestNoCredentialsRefused(t *testing.T) {
	if _, err := broker.Start(broker.Config{Listen: "127.0.0.1:0"}); err == nil {
		t.Fatal("a broker that admits nobody started without complaint")
	}
}
