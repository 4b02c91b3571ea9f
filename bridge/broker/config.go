package broker

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/mkrt/mkrt/configs"
)

// Node is what the defaults of a user's topics are made of: the topics the
// bridge serves for one node.
type Node struct {
	// Read are the filters of the node's published topics.
	Read []string
	// Commands are the filters of the node's command topics.
	Commands []string
}

// NodeTopics is the Node of a Sparkplug group and node id and a JSON topic
// prefix. The embedded broker serves one node, so its readers may
// subscribe to the whole of the JSON prefix and the Sparkplug namespace, as
// hosts do (spBv1.0/#, spBv1.0/<group>/#).
func NodeTopics(group, node, prefix string) Node {
	sp := "spBv1.0/" + group + "/"
	return Node{
		Read:     []string{prefix + "/#", "spBv1.0/#"},
		Commands: []string{prefix + "/" + node + "/+/set", sp + "NCMD/" + node, sp + "DCMD/" + node + "/+"},
	}
}

// FromConfig is the broker's users, topics and limits from cfg's
// bridge.mqtt section; bridge is the bridge's own credential and clientIDs
// the ids its clients use. A user listed without topics may subscribe to
// n.Read and, unless read_only, publish n.Commands.
func FromConfig(cfg *configs.Config, n Node, bridge User, clientIDs ...string) (Config, error) {
	m := &cfg.Bridge.MQTT
	bridge.Bridge = true
	c := Config{Listen: m.Listen, Users: []User{bridge}, Topics: Topics{Reserved: clientIDs}}
	if ph := cfg.Bridge.Sparkplug.PrimaryHost; ph != "" {
		c.Topics.State = "spBv1.0/STATE/" + ph
	}
	for _, u := range m.Users {
		bu := User{Username: u.Username, Password: u.Password, PrimaryHost: u.PrimaryHost, Publish: u.Topics.Publish, Subscribe: u.Topics.Subscribe}
		if u.PasswordFile != "" {
			h, err := os.ReadFile(cfg.ResolvePath(u.PasswordFile))
			if err != nil {
				return c, fmt.Errorf("broker: %s: user %s: password_file: %w", u.Pos, u.Username, err)
			}
			bu.PasswordHash = bytes.TrimSpace(h)
		}
		if bu.Subscribe == nil {
			bu.Subscribe = n.Read
		}
		if bu.Publish == nil && !u.ReadOnly {
			bu.Publish = n.Commands
		}
		if u.ReadOnly {
			bu.Publish = nil
		}
		c.Users = append(c.Users, bu)
	}
	l := m.Limits
	c.Limits = Limits{MaxPacket: uint32(l.MaxPacket), MaxClients: l.MaxClients, ConnectTimeout: time.Duration(l.ConnectTimeout),
		MaxInflight: uint16(l.MaxInflight), MessageRate: l.MessageRate}
	return c, nil
}
