package control_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mkrt/mkrt/bridge/plant"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

// With MKRT_CONTROL_PEER set the test binary is a client that prints the
// HTTP status it gets from the socket (used to connect as another uid).
func TestMain(m *testing.M) {
	if path := os.Getenv("MKRT_CONTROL_RAW_PEER"); path != "" {
		rawPeer(path, os.Getenv("MKRT_CONTROL_PEER_GROUPS"))
		os.Exit(0)
	}
	if path := os.Getenv("MKRT_CONTROL_PEER"); path != "" {
		_, err := control.NewClient(path).Status(context.Background())
		var re *control.RemoteError
		switch {
		case err == nil:
			fmt.Print(200)
		case errors.As(err, &re):
			fmt.Print(re.Status)
		default:
			fmt.Print(err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeController() *supervisortest.Controller {
	return &supervisortest.Controller{
		St: supervisor.Status{Partition: "p1", Backend: "process", State: supervisor.Running, PID: 42, Cycle: 1000,
			Uptime: 3 * time.Second, Isolation: supervisor.Isolation{CPUs: "1", CPUSet: "v1 exclusive", Degradations: []string{"irq: 2 left"}},
			Tasks: []supervisor.TaskStats{{Name: "fast", Period: time.Millisecond, Cycles: 1000, P99: 40 * time.Microsecond}}},
		TagsV: []control.TagValue{
			{Name: "level", Value: 1.25, Unit: "m", Quality: "good"},
			{Name: "setpoint", Value: 2, Quality: "good", Writable: true},
		},
	}
}

func serve(t *testing.T, ctrl control.Controller) (*control.Server, *control.Client) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	srv, err := control.Listen(filepath.Join(dir, "p1.sock"), ctrl, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, control.NewClient(srv.Path())
}

func tctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRoundTrips(t *testing.T) {
	ctrl := fakeController()
	srv, c := serve(t, ctrl)
	ctx := tctx(t)

	st, err := c.Status(ctx)
	if err != nil || st.State != supervisor.Running || st.PID != 42 || st.Isolation.CPUSet != "v1 exclusive" || st.Tasks[0].P99 != 40*time.Microsecond {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	tags, err := c.Tags(ctx)
	if err != nil || len(tags) != 2 || tags[0].Value != 1.25 {
		t.Fatalf("Tags = %+v, %v", tags, err)
	}
	if res, err := c.Set(ctx, "setpoint", "3.5"); err != nil || !res.Applied {
		t.Fatalf("Set = %+v, %v", res, err)
	}
	if tags, _ := c.Tags(ctx); tags[1].Value != 3.5 {
		t.Fatalf("set not applied: %+v", tags)
	}
	for _, tc := range []struct {
		name, value string
		kind        error
	}{{"nope", "1", control.ErrNotFound}, {"level", "1", control.ErrForbidden}, {"setpoint", "x", control.ErrInvalid}} {
		if _, err := c.Set(ctx, tc.name, tc.value); !errors.Is(err, tc.kind) {
			t.Errorf("Set(%s, %s) = %v, want %v", tc.name, tc.value, err, tc.kind)
		}
	}
	if res, err := c.Apply(ctx, "", []byte("tags: []\n")); err != nil || !res.Applied || string(ctrl.Config) != "tags: []\n" {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	// A config's relative paths resolve against its own directory, not the
	// supervisor's: the file crosses the socket as an absolute path.
	t.Chdir(t.TempDir())
	wd, _ := os.Getwd()
	if _, err := c.Apply(ctx, "plant/tank.yaml", []byte("tags: []\n")); err != nil || ctrl.File != filepath.Join(wd, "plant/tank.yaml") {
		t.Fatalf("Apply from plant/tank.yaml: supervisor got file %q, %v; want %s", ctrl.File, err, filepath.Join(wd, "plant/tank.yaml"))
	}
	_, err = c.Apply(ctx, "", []byte("invalid: 1\n"))
	if !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), "config.yaml:3:5") {
		t.Fatalf("Apply invalid = %v", err)
	}
	// The socket is 0660 in a 0750 directory.
	if fi, err := os.Stat(srv.Path()); err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	if fi, _ := os.Stat(filepath.Dir(srv.Path())); fi.Mode().Perm() != 0o750 {
		t.Fatalf("directory mode %v", fi.Mode())
	}
}

func TestWatchStreams(t *testing.T) {
	ctrl := fakeController()
	_, c := serve(t, ctrl)
	ctx, cancel := context.WithCancel(tctx(t))
	n := 0
	err := c.Watch(ctx, 10*time.Millisecond, func(tv []control.TagValue) error {
		n++
		if len(tv) != 2 {
			return fmt.Errorf("got %d tags", len(tv))
		}
		if n == 3 {
			cancel()
		}
		return nil
	})
	if err != nil || n < 3 {
		t.Fatalf("Watch = %v after %d updates", err, n)
	}
}

func TestNoPartition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p1.sock")
	_, err := control.NewClient(path).Status(tctx(t))
	if !errors.Is(err, control.ErrNoPartition) || !strings.Contains(err.Error(), "no running partition at "+path+" (start one with mkrt run CONFIG)") {
		t.Fatalf("err = %v", err)
	}
	dir := t.TempDir()
	if _, err := control.Resolve("", dir); !errors.Is(err, control.ErrNoPartition) {
		t.Fatalf("Resolve empty dir = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "a.sock"), nil, 0o600)
	if p, err := control.Resolve("", dir); err != nil || p != filepath.Join(dir, "a.sock") {
		t.Fatalf("Resolve one = %q %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, "b.sock"), nil, 0o600)
	if _, err := control.Resolve("", dir); err == nil || !strings.Contains(err.Error(), "--socket") {
		t.Fatalf("Resolve two = %v", err)
	}
	if p, _ := control.Resolve("/x.sock", dir); p != "/x.sock" {
		t.Fatalf("flag ignored: %q", p)
	}
}

func TestStaleSocketReplacedLiveOneKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p1.sock")
	// A stale socket: bound, then its listener gone without unlinking.
	fd, _ := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	srv, err := control.Listen(path, fakeController(), control.Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	if _, err := control.Listen(path, fakeController(), control.Options{}); err == nil {
		t.Fatal("second supervisor took over a live socket")
	}
	cancel()
	<-done
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left after Serve: %v", err)
	}
}

func TestCurlCanTalkToTheSocket(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("skipping: curl not installed")
	}
	srv, _ := serve(t, fakeController())
	out, err := exec.CommandContext(tctx(t), "curl", "-sS", "--unix-socket", srv.Path(), "-X", "POST",
		"-d", `{"value":"7"}`, "http://mkrt/v1/tags/setpoint").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(`"applied": true`)) {
		t.Fatalf("curl: %v\n%s", err, out)
	}
}

// TestPeerCredentialsChecked connects as uid/gid 65534 (nobody) through a
// socket whose file permissions would let anyone in: SO_PEERCRED must
// still refuse. Needs root to change the client's uid.
func TestPeerCredentialsChecked(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to connect as another uid")
	}
	srv, _ := serve(t, fakeController())
	for d := filepath.Dir(srv.Path()); len(d) > len(os.TempDir()); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	os.Chmod(srv.Path(), 0o777)
	exe, _ := os.Executable()
	// The test binary must be reachable by nobody: copy it somewhere world-readable.
	bin := filepath.Join(os.TempDir(), fmt.Sprintf("mkrt-control-peer-%d", os.Getpid()))
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(bin)
	for _, tc := range []struct {
		uid, gid uint32
		want     string
	}{{65534, 65534, "403"}, {0, 0, "200"}, {65534, uint32(os.Getegid()), "200"}} {
		cmd := exec.CommandContext(tctx(t), bin)
		cmd.Env = []string{"MKRT_CONTROL_PEER=" + srv.Path()}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.gid}}
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != tc.want {
			t.Errorf("uid %d gid %d: got %q (%v), want %s", tc.uid, tc.gid, out, err, tc.want)
		}
	}
}

func TestHumanOutput(t *testing.T) {
	var b bytes.Buffer
	ctrl := fakeController()
	ctrl.St.LastFault = &supervisor.Fault{Reason: "heartbeat stopped", Time: time.Unix(0, 0).UTC()}
	if err := control.WriteStatus(&b, ctrl.St); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p1 (process backend)", "running for 3s", "cpuset v1 exclusive", "last fault:", "heartbeat stopped", "degraded:", "fast", "40µs"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	control.WriteTags(&b, ctrl.TagsV)
	if !strings.Contains(b.String(), "level") || !strings.Contains(b.String(), "1.25") || !strings.Contains(b.String(), "m ") {
		t.Errorf("tags output:\n%s", b.String())
	}
}

func BenchmarkStatusRoundTrip(b *testing.B) {
	dir := b.TempDir()
	srv, err := control.Listen(filepath.Join(dir, "p1.sock"), fakeController(), control.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	c := control.NewClient(srv.Path())
	for b.Loop() {
		if _, err := c.Status(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// refusing answers every write with the executive's refusal.
type refusing struct {
	*supervisortest.Controller
	res wire.Result
}

func (r refusing) Set(context.Context, string, string) (control.Result, error) {
	return control.Result{}, fmt.Errorf("%w: %w", control.ErrInvalid, r.res.Err())
}

// A write the executive refused crosses the socket as the refusal itself:
// the CLI classifies it with the wire vocabulary and knows the cycle.
func TestRefusalCrossesTheSocket(t *testing.T) {
	_, c := serve(t, refusing{fakeController(), wire.Result{Status: wire.OutOfRange, Cycle: 77}})
	_, err := c.Set(tctx(t), "setpoint", "99")
	var rej *wire.RejectedError
	if !errors.Is(err, control.ErrInvalid) || !errors.Is(err, wire.ErrOutOfRange) || !errors.As(err, &rej) || rej.Result.Cycle != 77 {
		t.Fatalf("Set = %v (%T), want invalid, out of range at cycle 77", err, err)
	}
}

// rawPeer connects to the socket at path, then (when groups is set) takes
// those supplementary groups, then sends `mkrt set setpoint 9`, prints
// "sent" and, once answered, the HTTP status.
func rawPeer(path, groups string) {
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if groups != "" {
		var gs []int
		for _, f := range strings.Split(groups, ",") {
			g, _ := strconv.Atoi(f)
			gs = append(gs, g)
		}
		if err := syscall.Setgroups(gs); err != nil {
			fmt.Println("setgroups:", err)
			return
		}
	}
	body := `{"value":"9"}`
	fmt.Fprintf(c, "POST /v1/tags/setpoint HTTP/1.1\r\nHost: mkrt\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	fmt.Println("sent")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode)
}

// refusals records what the socket refused.
type refusals struct {
	mu sync.Mutex
	rs []plant.Refusal
}

func (r *refusals) Refuse(_ context.Context, rf plant.Refusal) {
	r.mu.Lock()
	r.rs = append(r.rs, rf)
	r.mu.Unlock()
}

// principals records who the writes that reached the controller came from.
type principals struct {
	*supervisortest.Controller
	mu  sync.Mutex
	who []plant.Principal
}

func (p *principals) Set(ctx context.Context, name, value string) (control.Result, error) {
	who, _ := plant.PrincipalFrom(ctx)
	p.mu.Lock()
	p.who = append(p.who, who)
	p.mu.Unlock()
	return p.Controller.Set(ctx, name, value)
}

// Finding 8: the socket's group check read the peer's groups from
// /proc/<pid>/status when the connection was accepted — by then the pid
// may be another process's, or the process another identity. The groups
// that count are those the peer had when it connected (SO_PEERGROUPS):
// a peer of the socket's group is let in, one outside refused (and the
// refused set audited), and a peer that connects outside the group and
// joins it before the server accepts stays refused. Needs root to start
// peers as nobody.
func TestGroupFromTheConnection(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to connect as another uid")
	}
	const group = 4242
	dir, err := os.MkdirTemp("", "mkrt-control-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	exe, _ := os.Executable()
	bin := filepath.Join(dir, "peer") // reachable by nobody
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		groups []uint32 // the peer's groups when it connects
		join   string   // groups it takes after connecting
		want   string
	}{
		{"in the group", []uint32{group}, "", "200"},
		{"outside the group", []uint32{100}, "", "403"},
		{"joins the group after connecting", nil, strconv.Itoa(group), "403"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctrl := &principals{Controller: fakeController()}
			ref := &refusals{}
			sock := filepath.Join(dir, "p1.sock")
			srv, err := control.Listen(sock, ctrl, control.Options{Group: group, Refuser: ref})
			if err != nil {
				t.Fatal(err)
			}
			// Let anyone connect, so that the check itself is what refuses.
			os.Chmod(sock, 0o666)
			cmd := exec.CommandContext(tctx(t), bin)
			cmd.Env = []string{"MKRT_CONTROL_RAW_PEER=" + sock, "MKRT_CONTROL_PEER_GROUPS=" + tc.join}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: tc.groups}}
			if tc.join != "" {
				cmd.SysProcAttr.AmbientCaps = []uintptr{unix.CAP_SETGID} // to join the group after connecting
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The peer has connected, joined and sent before the server
			// accepts: an identity read at accept time would be the new one.
			rd := bufio.NewReader(out)
			line, _ := rd.ReadString('\n')
			if line != "sent\n" {
				rest, _ := io.ReadAll(rd)
				cmd.Wait()
				t.Fatalf("peer: %q%s", line, rest)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx) }()
			status, _ := rd.ReadString('\n')
			cmd.Wait()
			cancel()
			<-done
			if strings.TrimSpace(status) != tc.want {
				t.Fatalf("HTTP status %q, want %s", status, tc.want)
			}
			if tc.want == "200" {
				if len(ctrl.who) != 1 || ctrl.who[0].Protocol != "cli" || ctrl.who[0].User != "nobody" || !strings.HasPrefix(ctrl.who[0].Peer, "uid 65534 gid 65534 pid ") {
					t.Fatalf("the write's principal: %+v", ctrl.who)
				}
				return
			}
			if len(ctrl.who) != 0 {
				t.Fatalf("a refused peer's write reached the controller: %+v", ctrl.who)
			}
			if len(ref.rs) != 1 {
				t.Fatalf("refusals recorded: %+v", ref.rs)
			}
			r := ref.rs[0]
			if r.Tag != "setpoint" || r.Value != "9" || r.Principal.User != "nobody" || r.Principal.Protocol != "cli" || !strings.Contains(r.Reason, "not root") {
				t.Fatalf("refusal recorded: %+v", r)
			}
		})
	}
}
