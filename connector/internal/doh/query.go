package doh

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"golang.org/x/net/dns/dnsmessage"
)

// MediaType is RFC 8484's media type, of queries (POST bodies) and answers.
const MediaType = "application/dns-message"

// MaxMessage is the largest DNS message (the TCP length prefix is 16 bits); a larger query is
// 413.
const MaxMessage = 65535

const headerLen = 12

// requestError is a request refused before it reaches the upstream: its HTTP status, its
// outcome for the counters and a message for the client.
type requestError struct {
	status  int
	outcome Outcome
	msg     string
}

func (e *requestError) Error() string { return e.msg }

func malformed(format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, OutcomeMalformed, fmt.Sprintf(format, args...)}
}

// readQuery takes the DNS query out of an RFC 8484 request: GET with ?dns= (base64url without
// padding) or POST with an application/dns-message body. w limits how much of a body is read.
func readQuery(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	switch r.Method {
	case http.MethodGet:
		q64 := r.URL.Query().Get("dns")
		if q64 == "" {
			return nil, malformed("missing the dns parameter (RFC 8484: GET /dns-query?dns=<base64url query>)")
		}
		if len(q64) > base64.RawURLEncoding.EncodedLen(MaxMessage) {
			return nil, &requestError{http.StatusRequestEntityTooLarge, OutcomeTooLarge, "query longer than 65535 bytes"}
		}
		q, err := base64.RawURLEncoding.DecodeString(q64)
		if err != nil {
			return nil, malformed("the dns parameter is not base64url without padding: %v", err)
		}
		return q, nil
	case http.MethodPost:
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != MediaType {
			return nil, &requestError{http.StatusUnsupportedMediaType, OutcomeMediaType,
				fmt.Sprintf("Content-Type %q is not %s", r.Header.Get("Content-Type"), MediaType)}
		}
		if r.ContentLength > MaxMessage {
			return nil, &requestError{http.StatusRequestEntityTooLarge, OutcomeTooLarge, "query longer than 65535 bytes"}
		}
		q, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMessage))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return nil, &requestError{http.StatusRequestEntityTooLarge, OutcomeTooLarge, "query longer than 65535 bytes"}
		case err != nil:
			return nil, malformed("reading the query: %v", err)
		}
		return q, nil
	default:
		w.Header().Set("Allow", "GET, POST")
		return nil, &requestError{http.StatusMethodNotAllowed, OutcomeMethod, fmt.Sprintf("method %s: use GET or POST", r.Method)}
	}
}

// Query is a DNS query that passed validation.
type Query struct {
	ID       uint16
	Question dnsmessage.Question
}

// ParseQuery validates a DNS query as a stub resolver sends it: a standard query (QR clear,
// opcode QUERY) with exactly one question, no answer or authority records, well-formed
// additional records with at most one OPT, and no zone transfer (AXFR and IXFR need a stream
// of messages, which DoH does not carry).
func ParseQuery(msg []byte) (Query, error) {
	if len(msg) < headerLen {
		return Query{}, fmt.Errorf("%d bytes is shorter than a DNS header", len(msg))
	}
	qd := binary.BigEndian.Uint16(msg[4:])
	an := binary.BigEndian.Uint16(msg[6:])
	ns := binary.BigEndian.Uint16(msg[8:])
	if qd != 1 {
		return Query{}, fmt.Errorf("%d questions, want 1", qd)
	}
	if an != 0 || ns != 0 {
		return Query{}, fmt.Errorf("a query with %d answer and %d authority records", an, ns)
	}
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return Query{}, fmt.Errorf("header: %w", err)
	}
	if h.Response {
		return Query{}, errors.New("a response (QR set), not a query")
	}
	if h.OpCode != 0 {
		return Query{}, fmt.Errorf("opcode %d, only QUERY (0) is served", h.OpCode)
	}
	q, err := p.Question()
	if err != nil {
		return Query{}, fmt.Errorf("question: %w", err)
	}
	if q.Type == dnsmessage.TypeAXFR || q.Type == 251 /* IXFR */ {
		return Query{}, fmt.Errorf("zone transfer (%v) is not served", q.Type)
	}
	if err := p.SkipAllQuestions(); err != nil {
		return Query{}, fmt.Errorf("question: %w", err)
	}
	if err := p.SkipAllAnswers(); err != nil {
		return Query{}, fmt.Errorf("answers: %w", err)
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return Query{}, fmt.Errorf("authorities: %w", err)
	}
	opts := 0
	for {
		rh, err := p.AdditionalHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return Query{}, fmt.Errorf("additional record: %w", err)
		}
		if rh.Type == dnsmessage.TypeOPT {
			if opts++; opts > 1 {
				return Query{}, errors.New("more than one OPT record (RFC 6891)")
			}
		}
		if err := p.SkipAdditional(); err != nil {
			return Query{}, fmt.Errorf("additional record: %w", err)
		}
	}
	return Query{ID: h.ID, Question: q}, nil
}

// refusedAnswer is the REFUSED response to msg (a query that passed ParseQuery): its header
// and question with QR and RCODE set, and RD and CD copied; no records.
func refusedAnswer(msg []byte, q Query) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: q.ID, Response: true, RecursionDesired: h.RecursionDesired,
		CheckingDisabled: h.CheckingDisabled, RCode: dnsmessage.RCodeRefused,
	})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q.Question); err != nil {
		return nil, err
	}
	return b.Finish()
}
