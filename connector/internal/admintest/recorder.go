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
	Body         any // *adminapi.PeerSet, *adminapi.Filter, *Approval or *adminapi.Tailnet
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
	case "PUT /v1/peers":
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
	if t, ok := body.(*adminapi.Tailnet); ok {
		s.tailnet = t
	}
	reply(w, 200, map[string]any{"generation": len(s.requests)})
}
