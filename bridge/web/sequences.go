package web

import (
	"net/http"
	"strings"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/shm/tag"
)

// seqDef is a sequence block as the Sequences page shows it: its steps,
// the tags its outputs write (the page reads their live values) and the
// writable tags its hold, resume and abort inputs read (the page's
// buttons write them, through the same checked, audited write path as
// every write). A name is "" where the block leaves the port unwired.
type seqDef struct {
	Task  string   `json:"task"`
	Block string   `json:"block"`
	Steps []string `json:"steps"`
	Step  string   `json:"step,omitempty"`
	Name  string   `json:"name,omitempty"`
	Time  string   `json:"time,omitempty"`
	Held  string   `json:"held,omitempty"`
	Alarm string   `json:"alarm,omitempty"`
	// Hold and Resume act on a rising edge, Abort is a level.
	Hold   string `json:"hold,omitempty"`
	Resume string `json:"resume,omitempty"`
	Abort  string `json:"abort,omitempty"`
}

// sequenceDefs are the sequence blocks of cfg.
func sequenceDefs(cfg *configs.Config, ids map[string]tag.ID, tags []tag.Info) []seqDef {
	out := []seqDef{}
	output := func(b *configs.Block, port string) string {
		if name, ok := b.Outputs[port]; ok {
			if _, ok := ids[name]; ok {
				return name
			}
		}
		return ""
	}
	// A command input reads a writable tag, or an expression over one
	// (abort: "batch_abort || high_switch", an interlock beside the
	// operator's abort): the button writes that tag. An expression over
	// several writable tags gets no button.
	command := func(b *configs.Block, port string) string {
		var found string
		for _, name := range strings.FieldsFunc(b.Inputs[port].Raw, notIdent) {
			if id, ok := ids[name]; ok && tags[id].Writable && tags[id].Type == tag.Bool {
				if found != "" && found != name {
					return ""
				}
				found = name
			}
		}
		return found
	}
	for _, t := range cfg.Tasks {
		for i := range t.Blocks {
			b := &t.Blocks[i]
			if b.Type != "sequence" {
				continue
			}
			d := seqDef{Task: t.Name, Block: b.Name,
				Step: output(b, "step"), Name: output(b, "name"), Time: output(b, "time"), Held: output(b, "held"), Alarm: output(b, "alarm"),
				Hold: command(b, "hold"), Resume: command(b, "resume"), Abort: command(b, "abort")}
			for _, s := range b.Steps {
				d.Steps = append(d.Steps, s.Name)
			}
			out = append(out, d)
		}
	}
	return out
}

func notIdent(r rune) bool {
	return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
}

func (s *Server) sequences(w http.ResponseWriter, r *http.Request, se session) {
	writeJSON(w, http.StatusOK, map[string]any{"sequences": s.hub.view().seqs})
}
