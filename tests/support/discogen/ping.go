package main

// discogen ping: a disco client made of Tailscale's own code, for end-to-end tests. It sends one
// ping (disco.Ping, sealed with key.DiscoShared) from a disco private key to a gateway's UDP
// port, waits for the pong, opens it with key.DiscoShared.Open and disco.Parse, checks the TxID
// and prints {"src": observed source the pong reports, "local": our address}. Exit 1 on no
// pong (timeout) or a pong that does not read back.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"time"

	"go4.org/mem"
	"tailscale.com/disco"
	"tailscale.com/types/key"
)

func pingMain(args []string) {
	fs := flag.NewFlagSet("ping", flag.ExitOnError)
	keyHex := fs.String("key", "", "our disco private key, hex (32 bytes)")
	gateway := fs.String("gateway", "", "the gateway's disco public key, base64 (wg pubkey of its key)")
	to := fs.String("to", "", "the gateway's WireGuard UDP endpoint ip:port or [ipv6]:port")
	nodeKey := fs.String("node-key", "", "the WireGuard public key to claim, base64 (optional)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the pong")
	fs.Parse(args)

	raw, err := hex.DecodeString(*keyHex)
	if err != nil || len(raw) != 32 {
		fail(fmt.Errorf("--key: 64 hex digits"))
	}
	ours := key.DiscoPrivateFromRaw32(mem.B(raw))
	gwRaw, err := base64.StdEncoding.DecodeString(*gateway)
	if err != nil || len(gwRaw) != 32 {
		fail(fmt.Errorf("--gateway: base64 of 32 bytes"))
	}
	shared := ours.Shared(key.DiscoPublicFromRaw32(mem.B(gwRaw)))
	ping := &disco.Ping{}
	rand.Read(ping.TxID[:])
	if *nodeKey != "" {
		nk, err := base64.StdEncoding.DecodeString(*nodeKey)
		if err != nil || len(nk) != 32 {
			fail(fmt.Errorf("--node-key: base64 of 32 bytes"))
		}
		ping.NodeKey = key.NodePublicFromRaw32(mem.B(nk))
	}
	// As magicsock's sendDiscoMessage: magic | our disco public key | Seal(message).
	pkt := []byte(disco.Magic)
	pkt = ours.Public().AppendTo(pkt)
	pkt = append(pkt, shared.Seal(ping.AppendMarshal(nil))...)

	raddr, err := net.ResolveUDPAddr("udp", *to)
	if err != nil {
		fail(err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	if _, err := conn.Write(pkt); err != nil {
		fail(err)
	}
	conn.SetReadDeadline(time.Now().Add(*timeout))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		fail(fmt.Errorf("no pong: %w", err))
	}
	msg, err := open(buf[:n], shared)
	if err != nil {
		fail(err)
	}
	pong, ok := msg.(*disco.Pong)
	if !ok {
		fail(fmt.Errorf("answer is %T, not a pong", msg))
	}
	if pong.TxID != ping.TxID {
		fail(fmt.Errorf("pong TxID %x, sent %x", pong.TxID, ping.TxID))
	}
	out, _ := json.Marshal(map[string]string{"src": pong.Src.String(), "local": conn.LocalAddr().String()})
	fmt.Println(string(out))
}

// open reads a frame with the real receive path: disco.Source, key.DiscoShared.Open, disco.Parse.
func open(frame []byte, shared key.DiscoShared) (disco.Message, error) {
	if _, ok := disco.Source(frame); !ok {
		return nil, fmt.Errorf("not a disco frame")
	}
	clear, ok := shared.Open(frame[len(disco.Magic)+32:])
	if !ok {
		return nil, fmt.Errorf("box does not open")
	}
	return disco.Parse(clear)
}
