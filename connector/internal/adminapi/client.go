package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client talks to one exitgw admin API with a bearer token.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client for the admin API at baseURL (e.g. http://127.0.0.1:9551).
func NewClient(baseURL, token string) *Client {
	return &Client{
		base:  strings.TrimRight(baseURL, "/"),
		token: token,
		http:  &http.Client{Timeout: 30 * time.Second},
	}
}

// StatusError is a reply other than 2xx; Message is the gateway's {"error": ...} text.
type StatusError struct {
	Method, Path string
	Code         int
	Message      string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("admin API %s %s: HTTP %d: %s", e.Method, e.Path, e.Code, e.Message)
}

// Refused reports whether err is the gateway refusing the content (4xx other than auth):
// sending it again will not help until it changes.
func Refused(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code >= 400 && se.Code < 500 && se.Code != 401
}

// PutPeers replaces the gateway's "tailnet" peer source (PUT /v1/tailnet/peers): the
// connector's own, which an operator's PUT /v1/peers and exitgwctl never touch, and which
// never touches theirs.
func (c *Client) PutPeers(ctx context.Context, set PeerSet) error {
	if set.Peers == nil {
		set.Peers = []Peer{}
	}
	return c.do(ctx, http.MethodPut, "/v1/tailnet/peers", set, nil)
}

// GetPeers reads the gateway's "tailnet" peer source (GET /v1/tailnet/peers); the fields a
// PeerSet does not have (source, counters) are left out.
func (c *Client) GetPeers(ctx context.Context) (PeerSet, error) {
	var set PeerSet
	err := c.do(ctx, http.MethodGet, "/v1/tailnet/peers", nil, &set)
	return set, err
}

// PutFilter sets the tailnet packet filter (it replaces the HuJSON policy's verdict while set).
func (c *Client) PutFilter(ctx context.Context, f Filter) error {
	if f.Rules == nil {
		f.Rules = []FilterRule{}
	}
	return c.do(ctx, http.MethodPut, "/v1/filter", f, nil)
}

// PostApproval sets the exit approval as the coordination server gives it.
func (c *Client) PostApproval(ctx context.Context, approved bool) error {
	return c.do(ctx, http.MethodPost, "/v1/approval", map[string]bool{"approved": approved}, nil)
}

// PutTailnet reports the connector's health.
func (c *Client) PutTailnet(ctx context.Context, t Tailnet) error {
	return c.do(ctx, http.MethodPut, "/v1/tailnet", t, nil)
}

// GatewayStatus is the part of GET /v1/status the connector reads: what the gateway holds of
// the connector's last health report (nil when it holds none, e.g. after a restart).
type GatewayStatus struct {
	Tailnet *Tailnet `json:"tailnet"`
}

// GetStatus reads GET /v1/status.
func (c *Client) GetStatus(ctx context.Context) (GatewayStatus, error) {
	var st GatewayStatus
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("admin API %s %s: encoding the body: %w", method, path, err)
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin API %s %s: reading the reply: %w", method, path, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(reply))
		if json.Unmarshal(reply, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &StatusError{Method: method, Path: path, Code: res.StatusCode, Message: msg}
	}
	if out != nil {
		if err := json.Unmarshal(reply, out); err != nil {
			return fmt.Errorf("admin API %s %s: decoding the reply: %w", method, path, err)
		}
	}
	return nil
}
