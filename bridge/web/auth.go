package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/mkrt/mkrt/configs"
)

// Role is what a logged-in user may do.
type Role int

// The roles: a Viewer sees everything, a Writer also writes writable tags
// and acknowledges alarms.
const (
	Viewer Role = iota + 1
	Writer
)

func (r Role) String() string {
	switch r {
	case Viewer:
		return "viewer"
	case Writer:
		return "writer"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Authenticator checks a user name and password and says the user's role.
// The HMI knows users only through it, so another user store (the
// broker's, a directory) can take the place of Users.
type Authenticator interface {
	Authenticate(user, pass string) (Role, bool)
}

// Users is an Authenticator over a fixed set of users: user name to
// credential. A credential is a plain password, compared in constant time,
// or a bcrypt hash ($2a$, $2b$, $2y$).
type Users map[string]Credential

// Credential is one user's secret and role.
type Credential struct {
	Secret string
	Role   Role
}

// dummy is compared against when the user is unknown and no user has a
// bcrypt hash, so an unknown user takes as long to refuse as a wrong plain
// password (with hashes, a hash is compared against instead).
var dummy = Credential{Secret: rand.Text()}

// Authenticate implements Authenticator.
func (u Users) Authenticate(user, pass string) (Role, bool) {
	c, ok := u[user]
	if !ok {
		c = dummy
		for _, o := range u {
			if isBcrypt(o.Secret) { // as slow as a wrong password of a hashed user
				c = o
				break
			}
		}
	}
	if !c.matches(pass) || !ok {
		return 0, false
	}
	return c.Role, true
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

func (c Credential) matches(pass string) bool {
	if isBcrypt(c.Secret) {
		return bcrypt.CompareHashAndPassword([]byte(c.Secret), []byte(pass)) == nil
	}
	// digests of equal length: the comparison tells nothing of the length
	a, b := sha256.Sum256([]byte(c.Secret)), sha256.Sum256([]byte(pass))
	return c.Secret != "" && subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// ConfigUsers are the MQTT users of m as HMI users: the bridge's own user
// (bridge.mqtt.username, with password or password_file) is a writer,
// every bridge.mqtt.users entry a viewer when read_only, else a writer.
// resolve makes a config-relative path absolute (configs.Config.ResolvePath).
func ConfigUsers(m configs.MQTT, resolve func(string) string) (Users, error) {
	if resolve == nil {
		resolve = func(p string) string { return p }
	}
	read := func(path, what string) (string, error) {
		b, err := os.ReadFile(resolve(path))
		if err != nil {
			return "", fmt.Errorf("web: %s: %w", what, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	us := Users{}
	if m.Username != "" {
		secret := m.Password
		if m.PasswordFile != "" {
			s, err := read(m.PasswordFile, "mqtt.password_file")
			if err != nil {
				return nil, err
			}
			secret = s
		}
		us[m.Username] = Credential{Secret: secret, Role: Writer}
	}
	for _, u := range m.Users {
		secret := u.Password
		if u.PasswordFile != "" {
			s, err := read(u.PasswordFile, "mqtt.users "+u.Username+" password_file")
			if err != nil {
				return nil, err
			}
			// htpasswd -nbB writes user:hash
			if _, h, ok := strings.Cut(s, ":"); ok && isBcrypt(h) {
				s = h
			}
			secret = s
		}
		role := Writer
		if u.ReadOnly {
			role = Viewer
		}
		us[u.Username] = Credential{Secret: secret, Role: role}
	}
	return us, nil
}

// session is one logged-in browser.
type session struct {
	user    string
	role    Role
	expires time.Time
}

// sessions are the logged-in browsers by cookie value.
type sessions struct {
	ttl   time.Duration
	clock func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(ttl time.Duration, clock func() time.Time) *sessions {
	return &sessions{ttl: ttl, clock: clock, m: map[string]*session{}}
}

// create starts a session and returns its token.
func (s *sessions) create(user string, role Role) string {
	var b [32]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	s.m[tok] = &session{user: user, role: role, expires: now.Add(s.ttl)}
	return tok
}

// get is the live session of tok.
func (s *sessions) get(tok string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[tok]
	if !ok {
		return session{}, false
	}
	if s.clock().After(v.expires) {
		delete(s.m, tok)
		return session{}, false
	}
	return *v, true
}

func (s *sessions) delete(tok string) {
	s.mu.Lock()
	delete(s.m, tok)
	s.mu.Unlock()
}

// limiter rate-limits login attempts per client address.
type limiter struct {
	every time.Duration
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newLimiter(every time.Duration, burst int) *limiter {
	return &limiter{every: every, burst: burst, m: map[string]*rate.Limiter{}}
}

// allow reports whether a login attempt from remote (host:port) may go on.
func (l *limiter) allow(remote string, now time.Time) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.m[host]
	if !ok {
		if len(l.m) >= 10000 { // forget the addresses that have all their attempts back
			for k, v := range l.m {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.m, k)
				}
			}
		}
		r = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.m[host] = r
	}
	return r.AllowN(now, 1)
}
