// Command discogen writes the disco test vectors (tests/unit/vectors/disco_vectors.json) with
// Tailscale's own code: frames are built with tailscale.com/disco's message marshalling and
// sealed with the NaCl box that tailscale.com/types/key wraps, at fixed keys and nonces so the
// output is byte-stable; each frame is then opened again with key.DiscoShared.Open and
// disco.Parse, the calls a real tailscaled uses, so a vector the real code cannot read is
// never written. Usage: go run . > ../../unit/vectors/disco_vectors.json
// `go run . ping ...` is a one-shot disco client for end-to-end tests (ping.go).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"

	"go4.org/mem"
	"golang.org/x/crypto/nacl/box"
	"tailscale.com/disco"
	"tailscale.com/types/key"
)

// A fixed private key per role, derived from its name so the file explains itself.
func privateKey(role string) key.DiscoPrivate {
	sum := sha256.Sum256([]byte("exitgw disco vector " + role))
	return key.DiscoPrivateFromRaw32(mem.B(sum[:]))
}

func rawPrivate(role string) [32]byte {
	return sha256.Sum256([]byte("exitgw disco vector " + role))
}

func nonceOf(seed byte) [24]byte {
	var n [24]byte
	for i := range n {
		n[i] = seed + byte(i)
	}
	return n
}

// seal builds a disco frame from sender to recipient at a fixed nonce: magic | sender public
// key | nonce | box, as magicsock's sendDiscoMessage lays it out.
func seal(sender, recipient string, nonce [24]byte, payload []byte) []byte {
	senderPriv := rawPrivate(sender)
	recipientPub := privateKey(recipient).Public().Raw32()
	var shared [32]byte
	box.Precompute(&shared, &recipientPub, &senderPriv)
	frame := []byte(disco.Magic)
	frame = privateKey(sender).Public().AppendTo(frame)
	frame = append(frame, nonce[:]...)
	return box.SealAfterPrecomputation(frame, payload, &nonce, &shared)
}

// openAs reads a frame back as `recipient` with the real receive path (see open).
func openAs(frame []byte, recipient string) (disco.Message, error) {
	src, ok := disco.Source(frame)
	if !ok {
		return nil, fmt.Errorf("not a disco frame")
	}
	sender := key.DiscoPublicFromRaw32(mem.B(src))
	return open(frame, privateKey(recipient).Shared(sender))
}

type Case struct {
	Name   string `json:"name"`
	Sender string `json:"sender"` // role whose disco key sealed the frame
	Frame  string `json:"frame"`
	// What the gateway must do: "pong_sent", or the reason it ignores the frame.
	Expect    string `json:"expect"`
	TxID      string `json:"tx_id,omitempty"`
	NodeKey   string `json:"node_key,omitempty"`
	Padding   int    `json:"padding,omitempty"`
	Src       string `json:"src,omitempty"`        // observed source the pong reports
	PongNonce string `json:"pong_nonce,omitempty"` // nonce the pong below was sealed with
	PongFrame string `json:"pong_frame,omitempty"` // the gateway's pong, sealed by Go
}

type Vectors struct {
	Generator string            `json:"generator"`
	Keys      map[string]string `json:"keys"` // role -> private key hex (public keys derived)
	Public    map[string]string `json:"public"`
	Cases     []Case            `json:"cases"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ping" {
		pingMain(os.Args[2:])
		return
	}
	roles := []string{"gateway", "peer", "stranger"}
	v := Vectors{
		Generator: "tests/support/discogen (tailscale.com v1.102.5 disco + types/key)",
		Keys:      map[string]string{},
		Public:    map[string]string{},
	}
	for _, r := range roles {
		raw := rawPrivate(r)
		v.Keys[r] = hex.EncodeToString(raw[:])
		pub := privateKey(r).Public().Raw32()
		v.Public[r] = hex.EncodeToString(pub[:])
	}
	nodeKey := key.NodePublicFromRaw32(mem.B(func() []byte {
		s := sha256.Sum256([]byte("exitgw disco vector peer node key"))
		return s[:]
	}()))
	src := netip.MustParseAddrPort("198.51.100.7:41641")
	src6 := netip.MustParseAddrPort("[2001:db8::7]:41641")

	pingCaseFrom := func(name string, seed byte, ping *disco.Ping, sender, expect string, src netip.AddrPort) Case {
		frame := seal(sender, "gateway", nonceOf(seed), ping.AppendMarshal(nil))
		c := Case{Name: name, Sender: sender, Frame: hex.EncodeToString(frame), Expect: expect,
			TxID: hex.EncodeToString(ping.TxID[:]), Padding: ping.Padding}
		if !ping.NodeKey.IsZero() {
			raw := ping.NodeKey.Raw32()
			c.NodeKey = hex.EncodeToString(raw[:])
		}
		if expect == "pong_sent" {
			pongNonce := nonceOf(seed + 100)
			pong := &disco.Pong{TxID: ping.TxID, Src: src}
			pongFrame := seal("gateway", sender, pongNonce, pong.AppendMarshal(nil))
			c.Src = src.String()
			c.PongNonce = hex.EncodeToString(pongNonce[:])
			c.PongFrame = hex.EncodeToString(pongFrame)
			check(pongFrame, sender, pong)
		}
		if sender != "stranger" {
			check(frame, "gateway", ping)
		}
		return c
	}
	pingCase := func(name string, seed byte, ping *disco.Ping, sender, expect string) Case {
		return pingCaseFrom(name, seed, ping, sender, expect, src)
	}
	txid := func(seed byte) (t [12]byte) {
		for i := range t {
			t[i] = seed ^ byte(i*17)
		}
		return
	}
	v.Cases = append(v.Cases,
		pingCase("ping_with_node_key", 1, &disco.Ping{TxID: txid(1), NodeKey: nodeKey}, "peer", "pong_sent"),
		pingCase("ping_without_node_key", 2, &disco.Ping{TxID: txid(2)}, "peer", "pong_sent"),
		pingCase("ping_with_padding", 3, &disco.Ping{TxID: txid(3), NodeKey: nodeKey, Padding: 100}, "peer", "pong_sent"),
		pingCase("ping_from_unknown_key", 4, &disco.Ping{TxID: txid(4), NodeKey: nodeKey}, "stranger", "unknown_sender"),
	)
	other := func(name string, seed byte, m disco.Message, expect string) Case {
		frame := seal("peer", "gateway", nonceOf(seed), m.AppendMarshal(nil))
		check(frame, "gateway", m)
		return Case{Name: name, Sender: "peer", Frame: hex.EncodeToString(frame), Expect: expect}
	}
	v.Cases = append(v.Cases,
		other("pong_from_peer", 5, &disco.Pong{TxID: txid(5), Src: src}, "pong_ignored"),
		other("call_me_maybe_from_peer", 6, &disco.CallMeMaybe{MyNumber: []netip.AddrPort{src}}, "call_me_maybe_ignored"),
		// A peer reaching the gateway over IPv6: the pong reports its IPv6 source.
		pingCaseFrom("ping_from_ipv6_source", 7, &disco.Ping{TxID: txid(7), NodeKey: nodeKey}, "peer", "pong_sent", src6),
	)
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(append(out, '\n'))
}

// check opens a frame with Tailscale's receive path and compares the message it finds.
func check(frame []byte, recipient string, want disco.Message) {
	got, err := openAs(frame, recipient)
	if err != nil {
		fail(err)
	}
	if string(got.AppendMarshal(nil)) != string(want.AppendMarshal(nil)) {
		fail(fmt.Errorf("frame reads back as %#v, want %#v", got, want))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "discogen:", err)
	os.Exit(1)
}
