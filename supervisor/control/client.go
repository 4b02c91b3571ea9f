package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mkrt/mkrt/supervisor"
)

// Client talks to one partition's control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path; nothing is dialled yet.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns: 1,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Resolve picks the socket the CLI talks to: flag when set, else the only
// *.sock in dirs (see Dirs). It fails with ErrNoPartition when there is
// none and asks to choose when there are several.
func Resolve(flag string, dirs ...string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	var socks []string
	for _, d := range dirs {
		found, _ := filepath.Glob(filepath.Join(d, "*.sock"))
		sort.Strings(found)
		socks = append(socks, found...)
	}
	switch len(socks) {
	case 0:
		return "", fmt.Errorf("%w in %s (start one with mkrt run CONFIG)", ErrNoPartition, strings.Join(dirs, " or "))
	case 1:
		return socks[0], nil
	}
	return "", fmt.Errorf("control: %d partitions are running (%s); choose one with -p NAME or --socket", len(socks), strings.Join(socks, ", "))
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://mkrt"+path, body)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	return decodeResponse(resp, out)
}

func decodeResponse(resp *http.Response, out any) error {
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("control: %s: %s", resp.Status, bytes.TrimSpace(b))
		}
		return kindError(resp.StatusCode, eb)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("control: bad answer: %w", err)
	}
	return nil
}

// dialError says "nothing is running" in the plant engineer's words when
// the socket is missing or nobody listens on it.
func (c *Client) dialError(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("%w at %s (start one with mkrt run CONFIG)", ErrNoPartition, c.path)
	}
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("control: %s: %w (run as root or join the socket's group)", c.path, ErrForbidden)
	}
	return fmt.Errorf("control: %w", err)
}

// Status asks for the partition's status.
func (c *Client) Status(ctx context.Context) (supervisor.Status, error) {
	var st supervisor.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Tags asks for every tag's value.
func (c *Client) Tags(ctx context.Context) ([]TagValue, error) {
	var tv []TagValue
	err := c.do(ctx, http.MethodGet, "/v1/tags", nil, &tv)
	return tv, err
}

// Watch calls fn with every tag's value each period until ctx ends or fn
// returns an error (which Watch returns). ctx ending returns nil.
func (c *Client) Watch(ctx context.Context, every time.Duration, fn func([]TagValue) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://mkrt/v1/tags?watch="+url.QueryEscape(every.String()), nil)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeResponse(resp, nil)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var tv []TagValue
		if err := json.Unmarshal(sc.Bytes(), &tv); err != nil {
			return fmt.Errorf("control: bad watch line: %w", err)
		}
		if err := fn(tv); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("control: watch: %w", err)
	}
	return fmt.Errorf("%w: the supervisor closed the watch", ErrUnavailable)
}

// Set writes value to the named tag.
func (c *Client) Set(ctx context.Context, name, value string) (Result, error) {
	b, _ := json.Marshal(setRequest{Value: value})
	var res Result
	err := c.do(ctx, http.MethodPost, "/v1/tags/"+url.PathEscape(name), bytes.NewReader(b), &res)
	return res, err
}

// Apply sends a config to the running partition; file is where it was
// read from ("" for none), made absolute here so that the supervisor
// resolves the config's relative paths where the user meant them.
func (c *Client) Apply(ctx context.Context, file string, cfg []byte) (ApplyResult, error) {
	var res ApplyResult
	path := "/v1/apply"
	if file != "" {
		abs, err := filepath.Abs(file)
		if err != nil {
			return res, fmt.Errorf("apply %s: %w", file, err)
		}
		path += "?" + url.Values{"file": {abs}}.Encode()
	}
	err := c.do(ctx, http.MethodPost, path, bytes.NewReader(cfg), &res)
	return res, err
}
