package plant

import "context"

// Principal is who sends a write, as the protocol server that took it
// authenticated it: the audit records it with every attempt, accepted or
// refused. The command's wire.Origin is the short form that crosses to the
// executive; the Principal is the whole of it, on the general side.
type Principal struct {
	// Protocol is the way in: "sparkplug", "json", "modbus", "cli",
	// "apply", "hand-over".
	Protocol string `json:"protocol"`
	// User is the authenticated user: the MQTT username, the OS user of a
	// control-socket peer, the subject of a client certificate.
	User string `json:"user,omitempty"`
	// ClientID is the MQTT client id.
	ClientID string `json:"client_id,omitempty"`
	// Peer is the remote address (host:port), or "uid 1000 gid 1000" for
	// a unix-socket peer.
	Peer string `json:"peer,omitempty"`
	// Role is the role a Modbus/TCP Security client certificate carries.
	Role string `json:"role,omitempty"`
}

type principalKey struct{}

// WithPrincipal is ctx carrying who sends the writes made with it.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom is who sends the writes made with ctx, when a protocol
// server said so.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Refusal is a write attempt a protocol server refused before it reached
// the plant: an ACL or role that does not allow it, a request that cannot
// be decoded, a will or retained message taken for a command. The audit
// records it with who tried, as it records the executive's own refusals.
type Refusal struct {
	Principal Principal
	// Tag is the tag the attempt named ("" when it named none that exists).
	Tag string
	// Value is the value asked for, as received.
	Value string
	// Reason says why it was refused.
	Reason string
}

// Refuser records refusals; the bridge passes its audit log as one. A nil
// Refuser records nothing (see Refuse).
type Refuser interface {
	Refuse(ctx context.Context, r Refusal)
}

// Refuse records r with to, when there is one.
func Refuse(ctx context.Context, to Refuser, r Refusal) {
	if to != nil {
		to.Refuse(ctx, r)
	}
}
