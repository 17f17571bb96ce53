package doh

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a real DNS server on loopback (UDP and TCP on one port) for the tests. It
// answers A queries with 192.0.2.1 and behaves by the name's first label:
//
//	big.*    over UDP: an empty answer with TC set; over TCP: 200 A records
//	slow.*   never answers
//	stray.*  over UDP: first a datagram with another ID, then the answer
//	nx.*     NXDOMAIN
type dnsServer struct {
	t    *testing.T
	addr netip.AddrPort
	udp  net.PacketConn
	tcp  net.Listener

	mu       sync.Mutex
	udpCount int
	tcpCount int
	ids      []uint16 // message IDs of the queries received
}

func startDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{t: t, udp: udp, addr: udp.LocalAddr().(*net.UDPAddr).AddrPort()}
	s.tcp, err = net.Listen("tcp", s.addr.String())
	if err != nil {
		udp.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.udp.Close(); s.tcp.Close() })
	go s.serveUDP()
	go s.serveTCP()
	return s
}

func (s *dnsServer) counts() (udp, tcp int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udpCount, s.tcpCount
}

func (s *dnsServer) serveUDP() {
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.udpCount++
		s.mu.Unlock()
		for _, out := range s.answer(buf[:n], false) {
			s.udp.WriteTo(out, from)
		}
	}
}

func (s *dnsServer) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return
			}
			q := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, q); err != nil {
				return
			}
			s.mu.Lock()
			s.tcpCount++
			s.mu.Unlock()
			for _, out := range s.answer(q, true) {
				c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out))))
				c.Write(out)
			}
		}()
	}
}

// answer returns the datagrams (or TCP messages) to send back for query q.
func (s *dnsServer) answer(q []byte, overTCP bool) [][]byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, err := p.Question()
	if err != nil {
		return nil
	}
	s.mu.Lock()
	s.ids = append(s.ids, h.ID)
	s.mu.Unlock()
	name := question.Name.String()
	first, _, _ := strings.Cut(name, ".")
	rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	records := 1
	switch first {
	case "slow":
		return nil
	case "nx":
		rh.RCode = dnsmessage.RCodeNameError
		records = 0
	case "big":
		if !overTCP {
			rh.Truncated = true
			records = 0
		} else {
			records = 200
		}
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	must(s.t, b.StartQuestions())
	must(s.t, b.Question(question))
	must(s.t, b.StartAnswers())
	for i := range records {
		must(s.t, b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.AResource{A: [4]byte{192, 0, 2, byte(1 + i%250)}}))
	}
	out, err := b.Finish()
	must(s.t, err)
	if first == "stray" && !overTCP {
		forged := append([]byte(nil), out...)
		binary.BigEndian.PutUint16(forged, h.ID+1)
		return [][]byte{forged, out}
	}
	return [][]byte{out}
}

func must(t *testing.T, err error) {
	if err != nil {
		t.Error(err)
	}
}

// query builds a DNS query for name (type A, RD set) with the given ID.
func query(t testing.TB, id uint16, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// parseAnswer returns an answer's header and its A records.
func parseAnswer(t *testing.T, msg []byte) (dnsmessage.Header, []netip.Addr) {
	t.Helper()
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	if err := p.SkipAllQuestions(); err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			t.Fatalf("answer record: %v", err)
		}
		if rh.Type != dnsmessage.TypeA {
			if err := p.SkipAnswer(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		a, err := p.AResource()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, netip.AddrFrom4(a.A))
	}
	return h, addrs
}
