// Package sdk is the Go client a ship (a game server) uses to talk to
// the Armada worker on its node: say it is ready, send heartbeats, mark
// itself allocated or reserved, set labels, shut down, and watch its own
// record.
//
// The worker hands every ship its endpoint in ARMADA_SDK_ADDR, its id in
// ARMADA_SHIP_ID and the token that proves it in ARMADA_SDK_TOKEN;
// FromEnv reads them:
//
//	s, err := sdk.FromEnv()
//	...
//	go s.Heartbeat(ctx, 2*time.Second)
//	err = s.Ready(ctx)
//
// Other languages call the same endpoints with any HTTP client (see the
// README): every request names the ship in the X-Armada-Ship header and
// carries its token in X-Armada-Token.
package sdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Ship is a ship's record as the cluster has it.
type Ship struct {
	ID            string            `json:"id"`
	Fleet         string            `json:"fleet,omitempty"`
	Blueprint     string            `json:"blueprint"`
	Version       int               `json:"version"`
	Node          string            `json:"node,omitempty"`
	State         string            `json:"state"`
	Desired       string            `json:"desired"`
	Ports         map[string]int    `json:"ports,omitempty"`
	Address       string            `json:"address,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Reason        string            `json:"reason,omitempty"`
	ReservedUntil int64             `json:"reserved_until,omitempty"`
}

// Error is an answer of the SDK endpoint other than 200.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("sdk: %s (%d %s)", e.Message, e.Status, e.Code) }

// Client talks to the SDK endpoint for one ship.
type Client struct {
	addr  string // http://host:port
	ship  string
	token string
	hc    *http.Client
}

// New makes a client for ship id, proving itself with token, at addr
// (ARMADA_SDK_ADDR: a URL, or host:port).
func New(addr, id, token string) (*Client, error) {
	if addr == "" || id == "" || token == "" {
		return nil, errors.New("sdk: the SDK address, the ship id and its token are required")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	if _, err := url.Parse(addr); err != nil {
		return nil, fmt.Errorf("sdk: address: %w", err)
	}
	return &Client{addr: strings.TrimSuffix(addr, "/"), ship: id, token: token, hc: &http.Client{}}, nil
}

// FromEnv makes the client from ARMADA_SDK_ADDR, ARMADA_SHIP_ID and
// ARMADA_SDK_TOKEN.
func FromEnv() (*Client, error) {
	return New(os.Getenv("ARMADA_SDK_ADDR"), os.Getenv("ARMADA_SHIP_ID"), os.Getenv("ARMADA_SDK_TOKEN"))
}

func (c *Client) auth(req *http.Request) {
	req.Header.Set("X-Armada-Ship", c.ship)
	req.Header.Set("X-Armada-Token", c.token)
}

// Addr is the SDK endpoint's URL.
func (c *Client) Addr() string { return c.addr }

// ID is the ship's id.
func (c *Client) ID() string { return c.ship }

func (c *Client) do(ctx context.Context, method, path, body string) (*Ship, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.addr+path, strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	c.auth(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("sdk: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error Error `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
			e.Error = Error{Code: "http", Message: strings.TrimSpace(string(b))}
		}
		e.Error.Status = resp.StatusCode
		return nil, &e.Error
	}
	var s Ship
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("sdk: decode ship: %w", err)
	}
	return &s, nil
}

// Ready says the ship is ready to serve (health type sdk).
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/ready", "")
	return err
}

// Health sends one heartbeat (health type sdk).
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/health", "")
	return err
}

// Heartbeat sends a heartbeat every interval until ctx ends. Failed
// heartbeats are retried on the next tick; it returns ctx's error.
func (c *Client) Heartbeat(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_ = c.Health(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Allocate marks the ship allocated (a match found it without the
// cluster's allocator).
func (c *Client) Allocate(ctx context.Context) (*Ship, error) {
	return c.do(ctx, http.MethodPost, "/allocate", "")
}

// Reserve sets the ship aside for d (whole seconds, at least one): it is
// not allocated nor scaled down meanwhile, and is ready again after.
func (c *Client) Reserve(ctx context.Context, d time.Duration) (*Ship, error) {
	secs := int64((d + time.Second - 1) / time.Second)
	return c.do(ctx, http.MethodPost, "/reserve?seconds="+strconv.FormatInt(secs, 10), "")
}

// Shutdown stops the ship for good; its process is stopped by the worker.
func (c *Client) Shutdown(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/shutdown", "")
	return err
}

// SetLabel sets one of the ship's labels; an empty value removes it.
func (c *Client) SetLabel(ctx context.Context, key, value string) (*Ship, error) {
	return c.do(ctx, http.MethodPut, "/labels/"+url.PathEscape(key), value)
}

// Ship reads the ship's record.
func (c *Client) Ship(ctx context.Context) (*Ship, error) {
	return c.do(ctx, http.MethodGet, "/ship", "")
}

// Watch calls fn with the ship's record now and after every change, until
// ctx ends, fn returns false, or the ship is gone (then it returns nil).
func (c *Client) Watch(ctx context.Context, fn func(*Ship) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.addr+"/watch", nil)
	if err != nil {
		return fmt.Errorf("sdk: %w", err)
	}
	c.auth(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("sdk: watch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return &Error{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(b))}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			if event == "gone" {
				return nil
			}
			var s Ship
			if err := json.Unmarshal(line[len("data: "):], &s); err != nil {
				return fmt.Errorf("sdk: watch: decode ship: %w", err)
			}
			if !fn(&s) {
				return nil
			}
		case len(line) == 0:
			event = ""
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("sdk: watch: %w", err)
	}
	return errors.New("sdk: watch: the stream ended")
}
