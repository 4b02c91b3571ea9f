package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Marshal encodes the config as YAML that Parse reads back to an equal
// config: keys in schema order, map keys sorted, values left at their zero
// value left out. Positions are not encoded.
func (c *Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	e := yaml.NewEncoder(&b)
	e.SetIndent(2)
	if err := e.Encode(encode(reflect.ValueOf(c).Elem(), true)); err != nil {
		return nil, fmt.Errorf("configs: encoding the config: %w", err)
	}
	if err := e.Close(); err != nil {
		return nil, fmt.Errorf("configs: encoding the config: %w", err)
	}
	return b.Bytes(), nil
}

// Hash is the SHA-256 of a canonical encoding of the config with its
// defaults filled (positions and comments excluded): two configs that mean
// the same thing hash the same, whatever their layout, key order or
// omitted defaults. The shared-memory header carries it so both kernels
// refuse to run on different configs.
func (c *Config) Hash() [32]byte {
	d := c.clone()
	d.Defaults()
	h := sha256.New()
	writeCanonical(h, encode(reflect.ValueOf(d).Elem(), true))
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// clone deep-copies the config through its encoding, keeping which
// meaningful zeros were written.
func (c *Config) clone() *Config {
	data, err := c.Marshal()
	if err == nil {
		if d, errs := parse("", data); d != nil && len(errs) == 0 {
			d.dir = c.dir
			return d
		}
	}
	// Not reached for any config Parse can produce; hash what there is.
	d := *c
	return &d
}

// writeCanonical writes n as length-prefixed kind, value and children.
func writeCanonical(h hash.Hash, n *yaml.Node) {
	var buf [binary.MaxVarintLen64]byte
	put := func(x int) { h.Write(buf[:binary.PutUvarint(buf[:], uint64(x))]) }
	put(int(n.Kind))
	put(len(n.Value))
	h.Write([]byte(n.Value))
	put(len(n.Content))
	for _, ch := range n.Content {
		writeCanonical(h, ch)
	}
}

// keepZero reports whether a zero in field f of struct t means zero
// rather than "the default" or "not set", so it is encoded even when zero.
func keepZero(t reflect.Type, f field) bool {
	if f.required {
		return true
	}
	name := f.name
	switch t {
	case reflect.TypeOf(Device{}):
		return name == "unit_id" || name == "retries" || name == "max_gap"
	case reflect.TypeOf(MQTT{}):
		return name == "qos"
	case reflect.TypeOf(ModbusServer{}):
		return name == "unit_id"
	}
	return false
}

func scalarNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }

func textNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// literalNode writes a value as plain as YAML allows, quoting only what
// would otherwise read back as null.
func literalNode(s string) *yaml.Node {
	switch strings.ToLower(s) {
	case "", "~", "null":
		return textNode(s)
	}
	return scalarNode(s)
}

// encode returns the YAML node of v, or nil when v is its zero value and
// force is false.
func encode(v reflect.Value, force bool) *yaml.Node {
	if !force && (v.IsZero() || (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0) {
		return nil
	}
	switch x := v.Interface().(type) {
	case Duration:
		return scalarNode(formatDuration(x.D()))
	case Size:
		return scalarNode(formatSize(int64(x)))
	case CPUList:
		return textNode(x.String())
	case Value:
		if !x.Set {
			return nil
		}
		return literalNode(x.Raw)
	case Ref:
		return literalNode(x.Raw)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return encode(v.Elem(), true)
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range fieldsOf(v.Type()) {
			if n := encode(v.Field(f.index), keepZero(v.Type(), f)); n != nil {
				m.Content = append(m.Content, textNode(f.name), n)
			}
		}
		if len(m.Content) == 0 && !force {
			return nil
		}
		return m
	case reflect.Slice:
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for i := 0; i < v.Len(); i++ {
			s.Content = append(s.Content, encode(v.Index(i), true))
		}
		return s
	case reflect.Map:
		m := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			n := encode(v.MapIndex(k), true)
			if n == nil {
				n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
			}
			m.Content = append(m.Content, textNode(k.String()), n)
		}
		return m
	case reflect.String:
		return textNode(v.String())
	case reflect.Bool:
		return scalarNode(strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalarNode(strconv.FormatInt(v.Int(), 10))
	case reflect.Float32, reflect.Float64:
		return scalarNode(strconv.FormatFloat(v.Float(), 'g', -1, 64))
	}
	return nil
}

// formatSize writes a byte count with the largest exact binary suffix.
func formatSize(n int64) string {
	for _, u := range []struct {
		suf  string
		mult int64
	}{{"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suf
		}
	}
	return strconv.FormatInt(n, 10)
}

// formatDuration writes d in the largest unit that holds it exactly
// ("1m", "30s", "250us"), which ParseDuration reads back.
func formatDuration(d time.Duration) string {
	for _, u := range []struct {
		suf string
		d   time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond}} {
		if d != 0 && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.suf
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}
