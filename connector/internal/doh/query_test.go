package doh

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// build makes a DNS message from a header, questions and additional OPT records.
func build(t testing.TB, h dnsmessage.Header, questions []dnsmessage.Question, answers, opts int) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, h)
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	for _, q := range questions {
		if err := b.Question(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.StartAnswers(); err != nil {
		t.Fatal(err)
	}
	for range answers {
		if err := b.AResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("a.example."), Class: dnsmessage.ClassINET},
			dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.StartAdditionals(); err != nil {
		t.Fatal(err)
	}
	for range opts {
		var rh dnsmessage.ResourceHeader
		if err := rh.SetEDNS0(1232, dnsmessage.RCodeSuccess, false); err != nil {
			t.Fatal(err)
		}
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func question(name string, typ dnsmessage.Type) dnsmessage.Question {
	return dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}
}

func TestParseQueryTakesOnlyStandardQueriesWithOneQuestion(t *testing.T) {
	one := []dnsmessage.Question{question("www.example.com.", dnsmessage.TypeA)}
	valid := build(t, dnsmessage.Header{ID: 77, RecursionDesired: true}, one, 0, 1)
	tests := []struct {
		name    string
		msg     []byte
		wantErr string // "" for valid
	}{
		{"A query with EDNS", valid, ""},
		{"AAAA query, no EDNS", build(t, dnsmessage.Header{}, []dnsmessage.Question{question("example.org.", dnsmessage.TypeAAAA)}, 0, 0), ""},
		{"empty", nil, "shorter than a DNS header"},
		{"header cut short", valid[:11], "shorter than a DNS header"},
		{"question cut short", valid[:20], "question"},
		{"no question", build(t, dnsmessage.Header{}, nil, 0, 0), "0 questions"},
		{"two questions", build(t, dnsmessage.Header{}, append(one, question("b.example.", dnsmessage.TypeA)), 0, 0), "2 questions"},
		{"a response", build(t, dnsmessage.Header{Response: true}, one, 0, 0), "a response"},
		{"opcode NOTIFY", build(t, dnsmessage.Header{OpCode: 4}, one, 0, 0), "opcode 4"},
		{"opcode STATUS", build(t, dnsmessage.Header{OpCode: 2}, one, 0, 0), "opcode 2"},
		{"answer records in a query", build(t, dnsmessage.Header{}, one, 1, 0), "1 answer"},
		{"two OPT records", build(t, dnsmessage.Header{}, one, 0, 2), "more than one OPT"},
		{"zone transfer AXFR", build(t, dnsmessage.Header{}, []dnsmessage.Question{question("example.com.", dnsmessage.TypeAXFR)}, 0, 0), "zone transfer"},
		{"zone transfer IXFR", build(t, dnsmessage.Header{}, []dnsmessage.Question{question("example.com.", 251)}, 0, 0), "zone transfer"},
		{"additional count beyond the message", func() []byte {
			m := bytes.Clone(valid)
			m[11] = 2 // ARCOUNT 2, one present
			return m
		}(), "additional record"},
		{"label pointer loop", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}, "question"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParseQuery(tt.msg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ParseQuery: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("ParseQuery took it: %+v", q)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q, want it to say %q", err, tt.wantErr)
			}
		})
	}
	q, err := ParseQuery(valid)
	if err != nil || q.ID != 77 || q.Question.Name.String() != "www.example.com." || q.Question.Type != dnsmessage.TypeA {
		t.Errorf("ParseQuery(valid) = %+v, %v", q, err)
	}
}

func TestReadQueryStatusPerRequestShape(t *testing.T) {
	msg := query(t, 0, "www.example.com.")
	b64 := base64.RawURLEncoding.EncodeToString(msg)
	tooLongGet := strings.Repeat("A", base64.RawURLEncoding.EncodedLen(MaxMessage)+1)
	tests := []struct {
		name        string
		method      string
		target      string
		contentType string
		body        []byte
		status      int // 0: accepted
		outcome     Outcome
	}{
		{"GET ?dns=", "GET", "/dns-query?dns=" + b64, "", nil, 0, 0},
		{"POST dns-message", "POST", "/dns-query", MediaType, msg, 0, 0},
		{"POST dns-message with a parameter", "POST", "/dns-query", MediaType + "; charset=binary", msg, 0, 0},
		{"GET without dns", "GET", "/dns-query", "", nil, 400, OutcomeMalformed},
		{"GET with padding", "GET", "/dns-query?dns=" + base64.URLEncoding.EncodeToString(msg[:len(msg)-1]), "", nil, 400, OutcomeMalformed},
		{"GET with standard base64", "GET", "/dns-query?dns=" + strings.NewReplacer("-", "+", "_", "/").Replace(b64) + "%2B%2F", "", nil, 400, OutcomeMalformed},
		{"GET too long", "GET", "/dns-query?dns=" + tooLongGet, "", nil, 413, OutcomeTooLarge},
		{"POST form", "POST", "/dns-query", "application/x-www-form-urlencoded", msg, 415, OutcomeMediaType},
		{"POST no content type", "POST", "/dns-query", "", msg, 415, OutcomeMediaType},
		{"POST json", "POST", "/dns-query", "application/dns-json", msg, 415, OutcomeMediaType},
		{"POST too large", "POST", "/dns-query", MediaType, make([]byte, MaxMessage+1), 413, OutcomeTooLarge},
		{"PUT", "PUT", "/dns-query", MediaType, msg, 405, OutcomeMethod},
		{"HEAD", "HEAD", "/dns-query?dns=" + b64, "", nil, 405, OutcomeMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, bytes.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			w := httptest.NewRecorder()
			got, rerr := readQuery(w, r)
			if tt.status == 0 {
				if rerr != nil {
					t.Fatalf("refused: %d %s", rerr.status, rerr.msg)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("query %x, want %x", got, msg)
				}
				return
			}
			if rerr == nil {
				t.Fatalf("accepted %x, want %d", got, tt.status)
			}
			if rerr.status != tt.status || rerr.outcome != tt.outcome {
				t.Errorf("%d %v (%s), want %d %v", rerr.status, rerr.outcome, rerr.msg, tt.status, tt.outcome)
			}
			if tt.status == http.StatusMethodNotAllowed && w.Header().Get("Allow") != "GET, POST" {
				t.Errorf("405 without Allow: GET, POST")
			}
		})
	}
}

// The validator never panics, and what it takes is what a stub resolver sends: one question,
// QR clear, opcode QUERY, no answer or authority records.
func FuzzParseQuery(f *testing.F) {
	f.Add(query(f, 1, "www.example.com."))
	f.Add(build(f, dnsmessage.Header{}, []dnsmessage.Question{question("a.b.", dnsmessage.TypeAAAA)}, 0, 1))
	f.Add(build(f, dnsmessage.Header{Response: true}, []dnsmessage.Question{question("a.b.", dnsmessage.TypeA)}, 1, 0))
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, msg []byte) {
		q, err := ParseQuery(msg)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(msg)
		if err != nil {
			t.Fatalf("accepted a message whose header does not parse: %v", err)
		}
		if h.Response || h.OpCode != 0 || h.ID != q.ID {
			t.Fatalf("accepted header %+v as query %+v", h, q)
		}
		qs, err := p.AllQuestions()
		if err != nil || len(qs) != 1 || qs[0] != q.Question {
			t.Fatalf("accepted questions %v (%v), returned %v", qs, err, q.Question)
		}
		if an, err := p.AllAnswers(); err != nil || len(an) != 0 {
			t.Fatalf("accepted answers %v (%v)", an, err)
		}
		// The REFUSED answer to anything accepted builds and parses back to the same question.
		refused, err := refusedAnswer(msg, q)
		if err != nil {
			t.Fatalf("refusedAnswer: %v", err)
		}
		if _, err := answers(refused, q.ID, q.Question); err != nil {
			t.Fatalf("the REFUSED answer does not answer the query: %v", err)
		}
	})
}
