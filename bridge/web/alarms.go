package web

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// alarmDef is an alarm the HMI watches: an output of an alarm block (a
// bool tag), or a device whose tags are not good.
type alarmDef struct {
	Name  string // the alarm tag, or "device <name>"
	Block string
	Port  string
	Desc  string
	tag   tag.ID // -1 for a device alarm
	input tag.ID // the watched value, -1 when none
	// ack is the tag an acknowledge writes 1 to (<alarm tag>_ack, when it
	// exists and is writable); -1: the alarm is shown read-only.
	ack tag.ID
	// unacked is the tag the block's unacked output writes, -1 when none:
	// its turning off is an acknowledge from elsewhere (Modbus, MQTT).
	unacked tag.ID
	device  string
}

// alarmDefs are the alarms of cfg: every output of every alarm block, and
// every device.
func alarmDefs(cfg *configs.Config, ids map[string]tag.ID, tags []tag.Info) []alarmDef {
	var out []alarmDef
	desc := map[string]string{}
	for _, t := range cfg.Tags {
		desc[t.Name] = t.Description
	}
	find := func(name string) tag.ID {
		if id, ok := ids[name]; ok {
			return id
		}
		return -1
	}
	for _, t := range cfg.Tasks {
		for _, b := range t.Blocks {
			if b.Type != "alarm" {
				continue
			}
			in := find(b.Inputs["in"].Raw)
			unacked := tag.ID(-1)
			if name, ok := b.Outputs["unacked"]; ok {
				unacked = find(name)
			}
			for _, port := range []string{"active", "hi", "lo", "hihi", "lolo"} {
				name, ok := b.Outputs[port]
				if !ok {
					continue
				}
				id := find(name)
				if id < 0 {
					continue
				}
				d := alarmDef{Name: name, Block: b.Name, Port: port, Desc: desc[name], tag: id, input: in, ack: -1, unacked: unacked}
				if a := find(name + "_ack"); a >= 0 && tags[a].Writable {
					d.ack = a
				}
				out = append(out, d)
			}
			for port, name := range b.Outputs { // ports not listed above
				if port == "unacked" { // the acknowledge state, not an alarm
					continue
				}
				if id := find(name); id >= 0 && !known(out, name) {
					out = append(out, alarmDef{Name: name, Block: b.Name, Port: port, Desc: desc[name], tag: id, input: in, ack: -1, unacked: unacked})
				}
			}
		}
	}
	for _, d := range cfg.Devices {
		out = append(out, alarmDef{Name: "device " + d.Name, Desc: "a tag of device " + d.Name + " is not good", tag: -1, input: -1, ack: -1, unacked: -1, device: d.Name})
	}
	return out
}

func known(ds []alarmDef, name string) bool {
	for _, d := range ds {
		if d.Name == name {
			return true
		}
	}
	return false
}

// alarmState is one alarm's state as the Alarms page shows it.
type alarmState struct {
	Name    string   `json:"name"`
	Block   string   `json:"block,omitempty"`
	Port    string   `json:"port,omitempty"`
	Desc    string   `json:"description,omitempty"`
	Active  bool     `json:"active"`
	Since   int64    `json:"since,omitempty"` // Unix ms it went active
	Value   *float64 `json:"value,omitempty"` // the watched value then
	Reason  string   `json:"reason,omitempty"`
	Ackable bool     `json:"ackable"`
	Acked   bool     `json:"acked,omitempty"`
	AckedBy string   `json:"acked_by,omitempty"`
}

// alarmEvent is a line of the recent alarm history.
type alarmEvent struct {
	Time  int64    `json:"time"`
	Alarm string   `json:"alarm"`
	Event string   `json:"event"` // raised, cleared, acknowledged
	Value *float64 `json:"value,omitempty"`
	By    string   `json:"by,omitempty"`
}

// maxRecent bounds the recent alarm history.
const maxRecent = 200

// alarmBook is the alarms' states and recent history; the hub's mutex
// guards it.
type alarmBook struct {
	gen    *view
	states []alarmState
	recent []alarmEvent // oldest first
	dirty  bool         // changed since the live streams were told
}

func (a *alarmBook) event(e alarmEvent) {
	if len(a.recent) >= maxRecent {
		a.recent = append(a.recent[:0], a.recent[len(a.recent)-maxRecent+1:]...)
	}
	a.recent = append(a.recent, e)
	a.dirty = true
}

// update brings the alarms up to the image cur.
func (a *alarmBook) update(v *view, cur []tag.Sample, now time.Time) {
	if a.gen != v {
		a.gen, a.states = v, make([]alarmState, len(v.alarms))
		for i, d := range v.alarms {
			a.states[i] = alarmState{Name: d.Name, Block: d.Block, Port: d.Port, Desc: d.Desc, Ackable: d.ack >= 0}
		}
	}
	tags := v.p.Tags()
	for i, d := range v.alarms {
		st := &a.states[i]
		active, reason := false, ""
		var val *float64
		switch {
		case d.tag >= 0 && int(d.tag) < len(cur):
			active = cur[d.tag].Quality == tag.Good && cur[d.tag].Value != 0
			if d.input >= 0 && int(d.input) < len(cur) {
				x := cur[d.input].Value
				val = &x
			}
		case d.device != "":
			for j := range tags {
				if tags[j].Device == d.device && j < len(cur) && cur[j].Quality != tag.Good {
					active, reason = true, cur[j].Quality.String()
					if cur[j].Reason != tag.NoReason {
						reason += ": " + cur[j].Reason.String()
					}
					break
				}
			}
		}
		if active == st.Active && reason == st.Reason {
			a.ackedElsewhere(d, st, cur, now)
			continue
		}
		ev := "raised"
		if !active {
			ev = "cleared"
		}
		if active && !st.Active {
			st.Since, st.Value, st.Acked, st.AckedBy = now.UnixMilli(), val, false, ""
		}
		st.Active, st.Reason = active, reason
		a.event(alarmEvent{Time: now.UnixMilli(), Alarm: d.Name, Event: ev, Value: val, By: reason})
	}
}

// ackedElsewhere marks an active alarm acknowledged when its block's
// unacked output has turned off without the HMI's acknowledge: SCADA
// acknowledged it over another protocol.
func (a *alarmBook) ackedElsewhere(d alarmDef, st *alarmState, cur []tag.Sample, now time.Time) {
	if !st.Active || st.Acked || d.unacked < 0 || int(d.unacked) >= len(cur) {
		return
	}
	if u := cur[d.unacked]; u.Quality == tag.Good && u.Value == 0 {
		st.Acked, st.AckedBy = true, "SCADA"
		a.event(alarmEvent{Time: now.UnixMilli(), Alarm: d.Name, Event: "acknowledged", By: "SCADA"})
	}
}

// list is the alarms, active first, and the recent history, newest first.
func (a *alarmBook) list(v *view) map[string]any {
	act, rest := []alarmState{}, []alarmState{}
	if a.gen == v {
		for _, s := range a.states {
			if s.Active {
				act = append(act, s)
			} else {
				rest = append(rest, s)
			}
		}
	}
	recent := make([]alarmEvent, 0, len(a.recent))
	for i := len(a.recent) - 1; i >= 0; i-- {
		recent = append(recent, a.recent[i])
	}
	return map[string]any{"alarms": append(act, rest...), "recent": recent}
}

func (s *Server) alarms(w http.ResponseWriter, r *http.Request, se session) {
	v := s.hub.view()
	s.hub.mu.Lock()
	out := s.hub.alarms.list(v)
	s.hub.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// ack acknowledges an alarm: a write of 1 to its ack tag (after a write
// of 0 when the tag is still on), audited like every write.
func (s *Server) ack(w http.ResponseWriter, r *http.Request, se session) {
	var req struct {
		Alarm string `json:"alarm"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "ack: send {\"alarm\":…}: "+err.Error())
		return
	}
	v := s.hub.view()
	var def *alarmDef
	for i := range v.alarms {
		if v.alarms[i].Name == req.Alarm {
			def = &v.alarms[i]
		}
	}
	if def == nil {
		jsonError(w, http.StatusNotFound, "no alarm "+req.Alarm)
		return
	}
	if def.ack < 0 {
		jsonError(w, http.StatusConflict, "alarm "+def.Name+" cannot be acknowledged: the config has no writable tag "+def.Name+"_ack")
		return
	}
	// An alarm block acknowledges on a rising edge of its ack input: an ack
	// tag still on from an earlier acknowledge is turned off first.
	name := v.p.Tags()[def.ack].Name
	s.hub.mu.Lock()
	stillOn := int(def.ack) < len(s.hub.snap) && s.hub.snap[def.ack].Value != 0
	s.hub.mu.Unlock()
	if stillOn {
		if status, res := s.writeTag(r, se, name, []byte("0")); !res.OK {
			writeJSON(w, status, res)
			return
		}
	}
	status, res := s.writeTag(r, se, name, []byte("1"))
	if res.OK {
		now := s.c.Clock().UnixMilli()
		s.hub.mu.Lock()
		if s.hub.alarms.gen == v {
			for i := range s.hub.alarms.states {
				if st := &s.hub.alarms.states[i]; st.Name == def.Name {
					st.Acked, st.AckedBy = true, se.user
				}
			}
			s.hub.alarms.event(alarmEvent{Time: now, Alarm: def.Name, Event: "acknowledged", By: se.user})
		}
		s.hub.mu.Unlock()
	}
	writeJSON(w, status, res)
}
