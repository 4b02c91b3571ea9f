package broker_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/broker"
)

// FuzzBrokerPacket: whatever bytes a client sends, the embedded broker
// neither panics nor hangs, and it still serves the next client.
func FuzzBrokerPacket(f *testing.F) {
	connect := []byte{0x10, 0x13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xc2, 0, 60, 0, 1, 'f', 0, 1, 'u', 0, 1, 'p'}
	publish := []byte{0x30, 0x0f, 0, 12, 'm', 'k', 'r', 't', '/', 'n', '/', 'x', '/', 's', 'e', 't', '1'}
	retained := append([]byte{0x31}, publish[1:]...)
	subscribe := []byte{0x82, 0x06, 0, 1, 0, 1, '#', 1}
	willConnect := []byte{0x10, 0x1d, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xe6, 0, 60, 0, 1, 'w', 0, 4, 'a', '/', 's', 't', 0, 1, 'x', 0, 1, 'u', 0, 1, 'p'}
	for _, s := range [][]byte{
		connect,
		append(append([]byte{}, connect...), publish...),
		append(append([]byte{}, connect...), retained...),
		append(append([]byte{}, connect...), subscribe...),
		willConnect,
		{0x10, 0xff, 0xff, 0xff, 0x7f},
		{0x30, 0x00},
		append(append([]byte{}, connect...), 0xe0, 0x00),
	} {
		f.Add(s)
	}
	rt := broker.NewRouter()
	rt.Handle(broker.Route{Filter: "mkrt/n/+/set", Protocol: "json", Deliver: func(broker.Message) {}})
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Commands: rt,
		Limits: broker.Limits{MaxPacket: 4096, ConnectTimeout: time.Second, MaxClients: 256},
		Users:  []broker.User{{Username: "u", Password: "p", Publish: []string{"#"}, Subscribe: []string{"#"}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	addr := b.Addr().String()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("the broker stopped accepting: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Millisecond))
		c.Write(data)
		io.Copy(io.Discard, c)
	})
}
