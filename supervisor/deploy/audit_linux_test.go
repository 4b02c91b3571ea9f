package deploy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/goburrow/modbus"

	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor/control"
)

// Finding 6: `mkrt set` and `mkrt apply` went around the audited path. Now
// a set goes through the bridge's audited plant with the control-socket
// peer's OS user, a refused set (out of range, no such tag) is recorded
// with its reason, and an apply is recorded with what changed and the
// generation — refused applies too.
func TestAuditSetAndApply(t *testing.T) {
	p := newPlant(t, plantOptions{level: 1.5, sp: 1.5})
	eventually(t, 10*time.Second, "level good", func() (bool, string) { _, ok := p.good("level"); return ok, "" })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := p.client.Set(ctx, "level_sp", "1.6"); err != nil {
		t.Fatalf("set level_sp 1.6: %v", err)
	}
	if _, err := p.client.Set(ctx, "level_sp", "99"); !errors.Is(err, wire.ErrOutOfRange) {
		t.Fatalf("set level_sp 99: %v, want out of range", err)
	}
	if _, err := p.client.Set(ctx, "nope", "1"); !errors.Is(err, control.ErrNotFound) {
		t.Fatalf("set nope: %v", err)
	}
	if res, err := p.client.Apply(ctx, "", []byte(replaceOnce(t, p.cfgText, "kp: 100", "kp: 120"))); err != nil || !res.Applied {
		t.Fatalf("apply kp 120: %+v %v", res, err)
	}
	if _, err := p.client.Apply(ctx, "", []byte("metadata: [")); !errors.Is(err, control.ErrInvalid) {
		t.Fatalf("apply of a broken config: %v", err)
	}

	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	peer := "uid " + me.Uid + " gid " + strconv.Itoa(mustAtoi(t, me.Gid))
	var es []audit.Entry
	if err := audit.Scan(filepath.Join(p.stateDir, "audit.jsonl"), func(e audit.Entry) error { es = append(es, e); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		what string
		ok   func(e audit.Entry) bool
	}{
		{"set level_sp 1.6 by " + me.Username, func(e audit.Entry) bool {
			return e.Source == "cli" && e.Who == me.Username && e.Tag == "level_sp" && e.OK && e.New == 1.6 && e.Old == 1.5 && e.Cycle > 0 &&
				e.Principal != nil && strings.HasPrefix(e.Principal.Peer, peer+" pid ")
		}},
		{"set level_sp 99 refused", func(e audit.Entry) bool {
			return e.Source == "cli" && e.Who == me.Username && e.Tag == "level_sp" && !e.OK && e.Refused && e.Status == "out of range" && e.New == 99.0
		}},
		{"set nope refused", func(e audit.Entry) bool {
			return e.Source == "cli" && e.Tag == "nope" && e.Refused && strings.Contains(e.Reason, "no tag")
		}},
		{"apply kp 120", func(e audit.Entry) bool {
			return e.Source == "apply" && e.Who == me.Username && e.OK && e.Generation == 1 && len(e.Changes) == 1 && strings.HasPrefix(e.Changes[0], "level_pid.kp: 100 -> 120")
		}},
		{"apply refused", func(e audit.Entry) bool {
			return e.Source == "apply" && !e.OK && e.Refused && strings.Contains(e.Reason, "does not validate")
		}},
	}
	i := 0
	for _, e := range es {
		if i < len(want) && want[i].ok(e) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("the audit log lacks %q (in order); it has:", want[i].what)
		for _, e := range es {
			t.Logf("%+v %+v", e, e.Principal)
		}
	}
}

// Every way in leaves its entry with who it was: the MQTT user and client
// id of a JSON /set (accepted, and a read-only user's refused), the peer
// of a plaintext Modbus write (refused: the example's write_allow taken out).
func TestAuditEveryWayIn(t *testing.T) {
	p := newPlant(t, plantOptions{level: 1.5, sp: 1.5, edit: func(cfg string) string {
		return replaceOnce(t, cfg, "write_allow: [127.0.0.1/32]", "write_allow: []")
	}})
	eventually(t, 10*time.Second, "level good", func() (bool, string) { _, ok := p.good("level"); return ok, "" })
	publish := func(user, pass, clientID, topic, payload string) {
		o := mqtt.NewClientOptions().AddBroker("tcp://" + p.mqttAddr).SetClientID(clientID).
			SetUsername(user).SetPassword(pass).SetConnectTimeout(5 * time.Second)
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("mqtt %s: connect: %v", user, tok.Error())
		}
		defer c.Disconnect(100)
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Logf("mqtt %s: publish %s: %v", user, topic, tok.Error())
		}
	}
	scadaID, viewerID := "e2e-scada-"+randHex(t, 3), "e2e-viewer-"+randHex(t, 3)
	publish("scada", "scada-demo", scadaID, "mkrt/tank-1/level_sp/set", "2.2")
	publish("viewer", "viewer-demo", viewerID, "mkrt/tank-1/level_sp/set", "4.2")
	h := modbus.NewTCPClientHandler(p.modbus)
	h.Timeout, h.SlaveId = 5*time.Second, 1
	if err := h.Connect(); err != nil {
		t.Fatal(err)
	}
	b := binary.BigEndian.AppendUint32(nil, math.Float32bits(2.4))
	if _, err := modbus.NewClient(h).WriteMultipleRegisters(0, 2, b); err == nil {
		t.Errorf("a plaintext Modbus write without write_allow was accepted")
	}
	h.Close()

	type want struct {
		what string
		ok   func(e audit.Entry) bool
	}
	wants := []want{
		{"json write by scada", func(e audit.Entry) bool {
			return e.Source == "json" && e.Who == "scada" && e.OK && e.Tag == "level_sp" && e.New == 2.2 && e.Principal != nil && e.Principal.ClientID == scadaID
		}},
		{"json write by viewer refused", func(e audit.Entry) bool {
			return e.Who == "viewer" && e.Refused && !e.OK && e.Principal != nil && e.Principal.ClientID == viewerID && e.Reason != ""
		}},
		{"modbus write refused", func(e audit.Entry) bool {
			return e.Source == "modbus" && e.Refused && e.Principal != nil && strings.HasPrefix(e.Principal.Peer, "127.0.0.1:")
		}},
	}
	eventually(t, 10*time.Second, "every attempt audited", func() (bool, string) {
		var es []audit.Entry
		audit.Scan(filepath.Join(p.stateDir, "audit.jsonl"), func(e audit.Entry) error { es = append(es, e); return nil }, nil)
		var missing []string
		for _, w := range wants {
			if !slices.ContainsFunc(es, w.ok) {
				missing = append(missing, w.what)
			}
		}
		var have []string
		for _, e := range es {
			have = append(have, fmt.Sprintf("%+v %+v", e, e.Principal))
		}
		return len(missing) == 0, fmt.Sprintf("missing %q; the log has:\n%s", missing, strings.Join(have, "\n"))
	})
}

// A hand-over is recorded as one: who asked, what changed, the
// generation that runs after it.
func TestAuditHandOver(t *testing.T) {
	p := newPlant(t, plantOptions{level: 1.5, sp: 1.5, standbyCPUs: "0"})
	eventually(t, 10*time.Second, "level good", func() (bool, string) { _, ok := p.good("level"); return ok, "" })
	res, err := p.apply(p.structuralChange(nil))
	if err != nil || !res.Applied {
		t.Fatalf("apply of a structural change = %+v, %v; want handed over", res, err)
	}
	var found []audit.Entry
	err = audit.Scan(filepath.Join(p.stateDir, "audit.jsonl"), func(e audit.Entry) error {
		if e.Source == "hand-over" {
			found = append(found, e)
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("%d hand-over entries: %+v", len(found), found)
	}
	e := found[0]
	if !e.OK || e.Generation != 2 || !strings.Contains(strings.Join(e.Changes, "\n"), "fresh: level_filter, level_very_high") ||
		e.Principal == nil || e.Principal.Protocol != "hand-over" || !strings.HasPrefix(e.Principal.Peer, "uid ") {
		t.Fatalf("hand-over entry: %+v %+v", e, e.Principal)
	}
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
