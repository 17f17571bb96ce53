package doh

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Upstream is the operator's resolver, asked over UDP and again over TCP when the UDP answer is
// truncated. Each exchange uses its own socket and a fresh random message ID (restored to the
// client's ID in the answer), and takes only an answer to its own question: a connected
// socket on a random port plus the ID make an off-path forgery unlikely.
type Upstream struct {
	Addr netip.AddrPort
	// Retransmit is how long to wait for a UDP answer before sending the query again (the
	// exchange's context bounds the whole). Zero: one second.
	Retransmit time.Duration

	tcpRetries atomic.Uint64 // UDP answers with TC set, asked again over TCP
	strays     atomic.Uint64 // UDP datagrams that were not the answer (ID or question differ)
}

// errTruncated is a UDP answer with the TC bit: ask again over TCP.
var errTruncated = errors.New("truncated")

// Exchange sends msg (a query that passed ParseQuery as q) and returns the answer with q.ID as
// its message ID. Its errors wrap context.DeadlineExceeded when ctx's deadline passed.
func (u *Upstream) Exchange(ctx context.Context, msg []byte, q Query) ([]byte, error) {
	out := append([]byte(nil), msg...)
	var idb [2]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, fmt.Errorf("random message ID: %w", err)
	}
	id := binary.BigEndian.Uint16(idb[:])
	binary.BigEndian.PutUint16(out, id)

	answer, err := u.exchangeUDP(ctx, out, id, q.Question)
	if errors.Is(err, errTruncated) {
		u.tcpRetries.Add(1)
		answer, err = u.exchangeTCP(ctx, out, id, q.Question)
	}
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(answer, q.ID)
	return answer, nil
}

// unblockOnDone makes a blocked read or write on c return once ctx ends.
func unblockOnDone(ctx context.Context, c net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
}

// ctxErr prefers ctx's error (deadline or cancel) to the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

func (u *Upstream) exchangeUDP(ctx context.Context, out []byte, id uint16, q dnsmessage.Question) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", u.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", u.Addr, ctxErr(ctx, err))
	}
	defer c.Close()
	defer unblockOnDone(ctx, c)()
	retransmit := u.Retransmit
	if retransmit <= 0 {
		retransmit = time.Second
	}
	buf := make([]byte, MaxMessage)
	for {
		if _, err := c.Write(out); err != nil {
			return nil, fmt.Errorf("upstream %s: sending over UDP: %w", u.Addr, ctxErr(ctx, err))
		}
		resend := time.Now().Add(retransmit)
		if dl, ok := ctx.Deadline(); ok && dl.Before(resend) {
			resend = dl
		}
		c.SetReadDeadline(resend)
		for {
			n, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
					if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
						err = context.DeadlineExceeded // the timer that ends ctx has not run yet
					} else {
						break // no answer in time: send again
					}
				}
				return nil, fmt.Errorf("upstream %s: no answer over UDP: %w", u.Addr, ctxErr(ctx, err))
			}
			tc, err := answers(buf[:n], id, q)
			if err != nil {
				u.strays.Add(1)
				continue
			}
			if tc {
				return nil, errTruncated
			}
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

func (u *Upstream) exchangeTCP(ctx context.Context, out []byte, id uint16, q dnsmessage.Question) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", u.Addr, ctxErr(ctx, err))
	}
	defer c.Close()
	defer unblockOnDone(ctx, c)()
	framed := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(out)), uint16(len(out)))
	if _, err := c.Write(append(framed, out...)); err != nil {
		return nil, fmt.Errorf("upstream %s: sending over TCP: %w", u.Addr, ctxErr(ctx, err))
	}
	var lenb [2]byte
	if _, err := io.ReadFull(c, lenb[:]); err != nil {
		return nil, fmt.Errorf("upstream %s: no answer over TCP: %w", u.Addr, ctxErr(ctx, err))
	}
	answer := make([]byte, binary.BigEndian.Uint16(lenb[:]))
	if _, err := io.ReadFull(c, answer); err != nil {
		return nil, fmt.Errorf("upstream %s: reading the answer over TCP: %w", u.Addr, ctxErr(ctx, err))
	}
	if _, err := answers(answer, id, q); err != nil {
		return nil, fmt.Errorf("upstream %s: over TCP: %w", u.Addr, err)
	}
	return answer, nil
}

// answers checks that msg is the answer to query id asking q (a response with that ID whose
// question, if it has one, is q; names compared without case) and reports its TC bit.
func answers(msg []byte, id uint16, q dnsmessage.Question) (truncated bool, err error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return false, fmt.Errorf("not a DNS message: %w", err)
	}
	if !h.Response || h.ID != id {
		return false, fmt.Errorf("not the answer (response %v, ID %d, want %d)", h.Response, h.ID, id)
	}
	got, err := p.Question()
	switch {
	case errors.Is(err, dnsmessage.ErrSectionDone):
		// Some servers answer FORMERR or NOTIMP without the question.
	case err != nil:
		return false, fmt.Errorf("answer's question: %w", err)
	case got.Type != q.Type || got.Class != q.Class || !strings.EqualFold(got.Name.String(), q.Name.String()):
		return false, fmt.Errorf("answer to another question (%v %v)", got.Name, got.Type)
	}
	return h.Truncated, nil
}
