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
