package configs_test

import "testing"

// TestValidateWeb: the web HMI's section is checked like the other
// servers': its port is its own, its TLS files exist, its trend is bounded.
func TestValidateWeb(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []problem
	}{
		{"off", header + "bridge:\n  web: {}\n", nil},
		{"on", header + "bridge:\n  web: {listen: 127.0.0.1:18080, trend: 30m, trend_every: 2s}\n", nil},
		{"port shared with metrics", header + "bridge:\n  metrics: {listen: 127.0.0.1:9102}\n  web: {listen: 127.0.0.1:9102}\n",
			[]problem{{"4:17", "web.listen 127.0.0.1:9102 is also the metrics.listen"}}},
		{"bad listen", header + "bridge:\n  web: {listen: nowhere}\n", []problem{{"3:17", "web.listen \"nowhere\" is not host:port"}}},
		{"cert without key", header + "bridge:\n  web: {listen: 127.0.0.1:18080, tls: {cert: web_test.go}}\n", []problem{{"3:39", "web.tls: cert and key go together"}}},
		{"missing cert", header + "bridge:\n  web: {listen: 127.0.0.1:18080, tls: {cert: nope.pem, key: nope.key}}\n",
			[]problem{{"3:46", "web.tls.cert: cannot read"}, {"3:61", "web.tls.key: cannot read"}}},
		{"negative trend", header + "bridge:\n  web: {listen: 127.0.0.1:18080, trend: -1h}\n", []problem{{"3:41", "is negative"}}},
		{"trend too long", header + "bridge:\n  web: {trend: 1000h, trend_every: 1ms}\n", []problem{{"3:16", "lengthen trend_every"}}},
		{"trend too long for the default interval", header + "bridge:\n  web: {trend: 1000h}\n", []problem{{"3:16", "1000h0m0s holds more than 1000000 samples of trend_every 1s"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, c.src, loadErrors(t, "x.yaml", c.src), c.want)
		})
	}
}
