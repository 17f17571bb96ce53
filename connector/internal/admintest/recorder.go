// Package admintest is an in-memory stand-in for exitgw's admin API for the connector's tests:
// it checks the bearer token, decodes each body strictly into the contract's types (an
// unknown field is a 400, as exitgw answers), records it and keeps the state GET /v1/status
// shows. exitgw itself needs DPDK, so the tests that need it live in tests/e2e.
package admintest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"

	"exitgw/connector/internal/adminapi"
)

// Request is one recorded update.
type Request struct {
	Method, Path string
	Body         any // *adminapi.PeerSet (the tailnet source's), *adminapi.Filter, *Approval or *adminapi.Tailnet
}

// Approval is the body of POST /v1/approval.
type Approval struct {
	Approved *bool `json:"approved"`
}

// Server records what the connector sends.
type Server struct {
	*httptest.Server
	Token string

	mu       sync.Mutex
	requests []Request
	tailnet  *adminapi.Tailnet
	peers    *adminapi.PeerSet // the tailnet peer source as GET /v1/tailnet/peers shows it
	refuse   map[string]string // path -> error message answered with 400
}

// New starts a server that accepts the token.
func New(token string) *Server {
	s := &Server{Token: token, refuse: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Refuse makes the server answer 400 with message to updates on path ("" message: accept).
func (s *Server) Refuse(path, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if message == "" {
		delete(s.refuse, path)
	} else {
		s.refuse[path] = message
	}
}

// Forget drops the state, as a restarted gateway would.
func (s *Server) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tailnet = nil
	s.peers = nil
}

// SetPeers changes the tailnet peer source behind the connector's back (as another client's
// PUT /v1/tailnet/peers would), without recording an update.
func (s *Server) SetPeers(set adminapi.PeerSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = &set
}

// Requests returns the updates recorded so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Of returns the bodies of the updates to path, in order.
func Of[T any](s *Server, path string) []*T {
	var out []*T
	for _, r := range s.Requests() {
		if b, ok := r.Body.(*T); ok && r.Path == path {
			out = append(out, b)
		}
	}
	return out
}

// Last returns the last update to path, or nil.
func Last[T any](s *Server, path string) *T {
	all := Of[T](s, path)
	if len(all) == 0 {
		return nil
	}
	return all[len(all)-1]
}

func reply(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		reply(w, 401, map[string]string{"error": "wrong bearer token"})
		return
	}
	var body any
	switch r.Method + " " + r.URL.Path {
	case "GET /v1/status":
		s.mu.Lock()
		defer s.mu.Unlock()
		reply(w, 200, map[string]any{"generation": len(s.requests), "tailnet": s.tailnet})
		return
	case "GET /v1/tailnet/peers":
		s.mu.Lock()
		defer s.mu.Unlock()
		// As exitgw shows them: every field, user null when empty, source "tailnet".
		peers := []map[string]any{}
		if s.peers != nil {
			for _, p := range s.peers.Peers {
				view := map[string]any{"public_key": p.PublicKey, "source": "tailnet", "user": nil,
					"tags": append([]string{}, p.Tags...), "allowed_ips": p.AllowedIPs, "endpoint": nil,
					"persistent_keepalive": 0, "has_preshared_key": false, "last_handshake_unix_ms": nil,
					"rx_bytes": 0, "tx_bytes": 0, "disco_key": nil}
				if p.User != "" {
					view["user"] = p.User
				}
				if p.DiscoKey != "" {
					view["disco_key"] = p.DiscoKey
				}
				peers = append(peers, view)
			}
		}
		reply(w, 200, map[string]any{"generation": len(s.requests), "peers": peers})
		return
	case "PUT /v1/tailnet/peers":
		body = &adminapi.PeerSet{}
	case "PUT /v1/filter":
		body = &adminapi.Filter{}
	case "POST /v1/approval":
		body = &Approval{}
	case "PUT /v1/tailnet":
		body = &adminapi.Tailnet{}
	default:
		reply(w, 404, map[string]string{"error": "no such resource"})
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		reply(w, 415, map[string]string{"error": "Content-Type must be application/json"})
		return
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(body); err != nil {
		reply(w, 400, map[string]string{"error": "the body: " + err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Body: body})
	if msg, ok := s.refuse[r.URL.Path]; ok {
		reply(w, 400, map[string]string{"error": msg})
		return
	}
	switch b := body.(type) {
	case *adminapi.Tailnet:
		s.tailnet = b
	case *adminapi.PeerSet:
		s.peers = b
	}
	reply(w, 200, map[string]any{"generation": len(s.requests)})
}
