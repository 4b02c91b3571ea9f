// Package bridge serves a running partition's process image to SCADA and
// carries SCADA's commands back: a Sparkplug B edge node and plain JSON
// topics over MQTT (to the embedded broker or any external, possibly
// clustered, broker), a Modbus TCP server, and a Prometheus /metrics
// endpoint, all reading one Plant — the shared-memory channel's view of the
// executive. Every write is validated, applied by the executive at a cycle
// start, acknowledged with the cycle number and recorded in the audit log.
//
// It runs on the general-purpose kernel and needs the ports it is configured
// to listen on and a writable state directory (store-and-forward buffer,
// bdSeq, audit log). No privileges.
//
// A bridge outlives a generation of the partition: Switch moves it to the
// next generation's plant while it runs, and SCADA sees no disconnect —
// only the Sparkplug rebirth the specification requires when the metrics
// change.
package bridge

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/bridge/broker"
	"github.com/mkrt/mkrt/bridge/metrics"
	"github.com/mkrt/mkrt/bridge/modbusserver"
	"github.com/mkrt/mkrt/bridge/mqttc"
	"github.com/mkrt/mkrt/bridge/mqttjson"
	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/bridge/sparkplug"
	"github.com/mkrt/mkrt/bridge/web"
	"github.com/mkrt/mkrt/configs"
)

// Options are the bridge's run-time settings that are not in the config.
type Options struct {
	Log   *slog.Logger
	Clock func() time.Time
	// StateDir holds the store-and-forward buffer (unless mqtt.store.dir
	// says otherwise), bdSeq and the audit log; default /var/lib/mkrt/<node>.
	StateDir string
	// AuditPath is the audit log; default StateDir/audit.jsonl.
	AuditPath string
	// Poll is the scan rate of the process image; default 10ms.
	Poll time.Duration
	// Partition, when set, is the supervisor's status of the partition
	// (restarts, isolation, outputs, last fault and hand-over), shown on
	// the web HMI's overview.
	Partition func() any
}

// Status is what `mkrt status` shows of the bridge.
type Status struct {
	// Broker is the embedded broker's address ("" when external) and its clients.
	Broker        string
	BrokerClients int
	// MQTT is the broker URL the clients use.
	MQTT      string
	Sparkplug *sparkplug.Status
	// JSONConnected, ModbusListening: the other servers.
	JSONConnected   bool
	Modbus          string
	ModbusListening bool
	Metrics         string
	// Web is the web HMI's URL ("" when off).
	Web string
	// Totals over all components.
	Published uint64
	Buffered  uint64
	Dropped   uint64
	Writes    map[string]uint64
}

// Bridge is the running service; build it with New, then Run once, and
// Switch it to each next generation's plant.
type Bridge struct {
	opts  Options
	log   *slog.Logger
	audit *audit.Log

	mqttOpts   mqttc.Options
	embedded   *broker.Config
	node       *sparkplug.Node
	json       *mqttjson.Publisher
	modbus     *modbusserver.Server
	counters   map[string]*metrics.Counters
	metricsFor string

	switchMu sync.Mutex // serialises Switch

	mu       sync.Mutex
	cfg      *configs.Config
	plant    *served // what the servers use now
	brk      *broker.Broker
	endpoint *metrics.Endpoint
	web      *web.Server
	ran      bool
}

// New checks the bridge config against the plant and builds every server.
// Nothing listens or connects before Run.
func New(cfg *configs.Config, p plant.Plant, o Options) (*Bridge, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = 10 * time.Millisecond
	}
	bc := cfg.Bridge
	group, node := identity(cfg)
	if o.StateDir == "" {
		o.StateDir = filepath.Join("/var/lib/mkrt", node)
	}
	if err := os.MkdirAll(o.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("bridge: state directory: %w", err)
	}
	if o.AuditPath == "" {
		o.AuditPath = filepath.Join(o.StateDir, "audit.jsonl")
	}
	b := &Bridge{cfg: cfg, opts: o, log: o.Log.With("component", "bridge"), counters: map[string]*metrics.Counters{}}
	if a := bc.Audit; a.MaxSize < 0 || a.Keep < 0 {
		return nil, fmt.Errorf("bridge: %s: audit: max_size %d, keep %d: neither may be negative (leave them out for 16Mi and 8)", a.Pos, a.MaxSize, a.Keep)
	}
	al, err := audit.New(o.AuditPath, audit.Options{Log: o.Log, Clock: o.Clock, MaxSize: int64(bc.Audit.MaxSize), Keep: bc.Audit.Keep})
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b.audit = al
	b.plant = newServed(audit.Wrap(p, al))

	m := bc.MQTT
	embedded := m.Broker == "" || m.Broker == "embedded"
	clientID := m.ClientID
	if clientID == "" {
		clientID = "mkrt-" + node
	}
	prefix := bc.JSON.Prefix
	if prefix == "" {
		prefix = "mkrt"
	}
	// commands reach the servers from the embedded broker, with who sent them
	var commands *broker.Router
	if embedded {
		if m.Username == "" {
			// the bridge's own clients get a credential nobody else knows
			var r [16]byte
			rand.Read(r[:])
			m.Username, m.Password = "mkrt-bridge", hex.EncodeToString(r[:])
		}
		mo, err := mqttc.FromConfig(m, clientID, "")
		if err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
		brc, err := broker.FromConfig(cfg, broker.NodeTopics(group, node, prefix), broker.User{Username: mo.Username, Password: mo.Password}, clientID, clientID+"-json")
		if err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
		commands = broker.NewRouter()
		ec := &brc
		ec.Log, ec.Commands, ec.Refuser = o.Log, commands, al
		if ec.Listen == "" {
			ec.Listen = "127.0.0.1:1883"
		}
		if m.TLS.Cert != "" {
			tc, err := serverTLS(m.TLS)
			if err != nil {
				return nil, err
			}
			ec.TLS = tc
		}
		b.embedded = ec
		b.mqttOpts = mo
	} else {
		mo, err := mqttc.FromConfig(m, clientID, "")
		if err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
		b.mqttOpts = mo
	}
	b.mqttOpts.KeepAlive = m.KeepAlive.D()
	// configs.Defaults makes an unwritten qos 1; a written 0 stays 0.
	if m.QoS < 0 || m.QoS > 1 {
		return nil, fmt.Errorf("bridge: %s: mqtt.qos %d: use 0 or 1", m.Pos, m.QoS)
	}
	qos := byte(m.QoS)
	backoff := mqttc.Backoff{Min: 250 * time.Millisecond, Max: 30 * time.Second}
	if bc.Sparkplug.Enabled == nil || *bc.Sparkplug.Enabled {
		k := new(metrics.Counters)
		b.counters["sparkplug"] = k
		storeDir := m.Store.Dir
		if storeDir == "" {
			storeDir = o.StateDir
		}
		mo := b.mqttOpts
		n, err := sparkplug.New(sparkplug.Config{Group: group, Node: node, PrimaryHost: bc.Sparkplug.PrimaryHost, Poll: o.Poll,
			IntegrityPeriod: bc.Sparkplug.IntegrityPeriod.D(), QoS: qos, MQTT: mo, Backoff: backoff, StoreDir: storeDir,
			StoreMax: int64(m.Store.Max), Log: o.Log, Clock: o.Clock, Counters: k, Commands: commands, Refuser: al}, b.plant)
		if err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
		b.node = n
	}
	if bc.JSON.Enabled == nil || *bc.JSON.Enabled {
		k := new(metrics.Counters)
		b.counters["json"] = k
		mo := b.mqttOpts
		mo.ClientID += "-json"
		j, err := mqttjson.New(mqttjson.Config{Prefix: prefix, Node: node, QoS: qos, Poll: o.Poll, MQTT: mo, Backoff: backoff,
			Log: o.Log, Clock: o.Clock, Counters: k, Commands: commands, Refuser: al}, b.plant)
		if err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
		b.json = j
	}
	if ms := bc.Modbus; ms.Listen != "" {
		k := new(metrics.Counters)
		b.counters["modbus"] = k
		mc := modbusserver.Config{Listen: ms.Listen, MaxClients: ms.MaxClients, IdleTimeout: ms.IdleTimeout.D(), UnitID: ms.UnitID,
			Map: ms.Map, Poll: o.Poll, Log: o.Log, Counters: k, MaxClientsPerAddress: ms.MaxClientsPerAddress, WriteRoles: ms.WriteRoles,
			Identification: modbusserver.Identification{Vendor: ms.Identification.Vendor, Product: cmp.Or(ms.Identification.Product, node), Version: ms.Identification.Version},
			Refuser:        al}
		for _, a := range ms.WriteAllow {
			n, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("bridge: %s: modbus.write_allow: %w", ms.Pos, err)
			}
			mc.WriteAllow = append(mc.WriteAllow, n)
		}
		if ms.TLS.Cert != "" {
			kp, err := tls.LoadX509KeyPair(ms.TLS.Cert, ms.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("bridge: %s: modbus certificate: %w", ms.TLS.Pos, err)
			}
			if ms.TLS.CA == "" {
				return nil, fmt.Errorf("bridge: %s: modbus TLS needs ca (the CA of client certificates)", ms.TLS.Pos)
			}
			pool, err := mqttc.LoadPool(ms.TLS.CA)
			if err != nil {
				return nil, fmt.Errorf("bridge: %w", err)
			}
			mc.TLSCert, mc.TLSClientCAs = &kp, pool
		}
		s, err := modbusserver.New(mc, b.plant)
		if err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
		b.modbus = s
	}
	b.metricsFor = bc.Metrics.Listen
	if bc.Web.Listen != "" {
		w, err := newWeb(cfg, b)
		if err != nil {
			return nil, err
		}
		b.web = w
	}
	return b, nil
}

// identity is the Sparkplug group and edge node id of cfg, with their
// defaults: metadata.site and metadata.name, else mkrt. The node id names
// the bridge's state directory, MQTT client ids and JSON topics too.
func identity(cfg *configs.Config) (group, node string) {
	group, node = cfg.Bridge.Sparkplug.Group, cfg.Bridge.Sparkplug.Node
	if group == "" {
		group = cfg.Metadata.Site
	}
	if group == "" {
		group = "mkrt"
	}
	if node == "" {
		node = cfg.Metadata.Name
	}
	if node == "" {
		node = "mkrt"
	}
	return group, node
}

// current is the plant the servers use now.
func (b *Bridge) current() plant.Plant {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.plant
}

// Plant is the audited plant the bridge's servers use now: writes made
// through it (the control socket's mkrt set) are checked and audited like
// SCADA's. A Switch replaces it; take it for each write.
func (b *Bridge) Plant() plant.Plant { return b.current() }

// Audit is the bridge's audit log, open until Run returns: the
// plant.Refuser of attempts refused before a write, and where applies and
// hand-overs are recorded.
func (b *Bridge) Audit() *audit.Log { return b.audit }

func serverTLS(t configs.TLS) (*tls.Config, error) {
	kp, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("bridge: %s: broker certificate: %w", t.Pos, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}}
	if t.ClientAuth {
		pool, err := mqttc.LoadPool(t.CA)
		if err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// Run starts the embedded broker (when configured), the MQTT clients, the
// Modbus server and the metrics endpoint, and serves until ctx ends or one
// of them fails. It may be called once.
func (b *Bridge) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.ran {
		b.mu.Unlock()
		return errors.New("bridge: Run called twice")
	}
	b.ran = true
	b.mu.Unlock()
	defer b.audit.Close()
	if b.embedded != nil {
		brk, err := broker.Start(*b.embedded)
		if err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
		defer brk.Close()
		b.mu.Lock()
		b.brk = brk
		b.mqttOpts.Broker = brk.URL()
		b.mu.Unlock()
		b.log.Info("bridge: embedded MQTT broker listening", "addr", brk.Addr().String())
		url := brk.URL()
		if b.node != nil {
			b.node.SetBroker(url)
		}
		if b.json != nil {
			b.json.SetBroker(url)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 5)
	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("bridge: %s: %w", name, err)
				cancel()
			}
		}()
	}
	if b.metricsFor != "" {
		health := func() plant.Health { return b.current().Health() }
		e, err := metrics.Listen(b.metricsFor, metrics.NewCollector(health, b.counters))
		if err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
		b.mu.Lock()
		b.endpoint = e
		b.mu.Unlock()
		run("metrics", e.Run)
	}
	if b.node != nil {
		run("sparkplug", b.node.Run)
	}
	if b.json != nil {
		run("json", b.json.Run)
	}
	if b.modbus != nil {
		run("modbus", b.modbus.Run)
	}
	if b.web != nil {
		run("web", b.web.Run)
	}
	<-ctx.Done()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// Status reports connections and counters.
func (b *Bridge) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{MQTT: b.mqttOpts.Broker, Writes: map[string]uint64{}}
	if b.brk != nil {
		s.Broker, s.BrokerClients = b.brk.Addr().String(), b.brk.Clients()
	}
	if b.node != nil {
		st := b.node.Status()
		s.Sparkplug = &st
	}
	if k := b.counters["json"]; k != nil {
		s.JSONConnected = k.Connected.Load()
	}
	if k := b.counters["modbus"]; k != nil {
		s.Modbus, s.ModbusListening = b.cfg.Bridge.Modbus.Listen, k.Connected.Load()
	}
	if b.endpoint != nil {
		s.Metrics = b.endpoint.Addr().String()
	}
	if b.web != nil {
		s.Web = b.web.URL()
	}
	for _, k := range b.counters {
		s.Published += k.Published.Load()
		s.Buffered += k.Buffered.Load()
		s.Dropped += k.Dropped.Load()
		for r := metrics.WriteOK; r <= metrics.WriteTimeout; r++ {
			s.Writes[r.String()] += k.Writes(r)
		}
	}
	return s
}

// generation is the config and the plant the servers use now; the web
// HMI follows it across a Switch.
func (b *Bridge) generation() (*configs.Config, plant.Plant) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg, b.plant
}

// newWeb builds the web HMI of cfg over b's audited plant: its users are
// the MQTT users, its writes and refusals go to b's audit log.
func newWeb(cfg *configs.Config, b *Bridge) (*web.Server, error) {
	wc := cfg.Bridge.Web
	users, err := web.ConfigUsers(cfg.Bridge.MQTT, cfg.ResolvePath)
	if err != nil {
		return nil, fmt.Errorf("bridge: %s: %w", wc.Pos, err)
	}
	c := web.Config{Listen: wc.Listen, Auth: users, Config: cfg, Refuser: b.audit, AuditPath: b.opts.AuditPath,
		Trend: wc.Trend.D(), TrendEvery: wc.TrendEvery.D(), Log: b.opts.Log, Clock: b.opts.Clock,
		Status: func() any { return b.Status() }, Partition: b.opts.Partition, Current: b.generation}
	if wc.TLS.Cert != "" {
		kp, err := tls.LoadX509KeyPair(cfg.ResolvePath(wc.TLS.Cert), cfg.ResolvePath(wc.TLS.Key))
		if err != nil {
			return nil, fmt.Errorf("bridge: %s: web certificate: %w", wc.TLS.Pos, err)
		}
		c.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}}
	}
	w, err := web.New(c, b.plant)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	return w, nil
}
