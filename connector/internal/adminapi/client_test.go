package adminapi_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"exitgw/connector/internal/adminapi"
	"exitgw/connector/internal/admintest"
)

func TestUpdatesArriveAsTheContractSpells(t *testing.T) {
	srv := admintest.New("secret")
	defer srv.Close()
	c := adminapi.NewClient(srv.URL+"/", "secret")
	ctx := context.Background()

	peers := adminapi.PeerSet{Peers: []adminapi.Peer{{PublicKey: "k", AllowedIPs: []string{"100.64.0.5/32"},
		User: "alice@example.com", Tags: []string{"tag:a"}, DiscoKey: "d"}}}
	filter := adminapi.Filter{Rules: []adminapi.FilterRule{{Src: []string{"100.64.0.0/10"},
		Dst: []adminapi.FilterDst{{Prefix: "0.0.0.0/5", Ports: [2]uint16{0, 65535}}}, Protocols: []int{6, 17, 1}}}}
	health := adminapi.Tailnet{State: adminapi.StateStale, SinceUnixMs: 5, LastNetmapUnixMs: 4, Message: "m", NodeKey: "nodekey:ab", LoginServer: "http://x", Addresses: []string{"100.64.0.1", "fd7a:115c:a1e0::1"}}
	for _, err := range []error{c.PutPeers(ctx, peers), c.PutFilter(ctx, filter), c.PostApproval(ctx, true), c.PutTailnet(ctx, health)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := admintest.Last[adminapi.PeerSet](srv, "/v1/tailnet/peers"); !reflect.DeepEqual(*got, peers) {
		t.Errorf("peers: got %+v", got)
	}
	if got := admintest.Last[adminapi.Filter](srv, "/v1/filter"); !reflect.DeepEqual(*got, filter) {
		t.Errorf("filter: got %+v", got)
	}
	if got := admintest.Last[admintest.Approval](srv, "/v1/approval"); got.Approved == nil || !*got.Approved {
		t.Errorf("approval: got %+v", got)
	}
	st, err := c.GetStatus(ctx)
	if err != nil || st.Tailnet == nil || !reflect.DeepEqual(*st.Tailnet, health) {
		t.Errorf("GET /v1/status: %+v, %v; want the tailnet health just put", st, err)
	}
}

func TestEmptySetsAreSentAsEmptyArraysNotNull(t *testing.T) {
	srv := admintest.New("secret")
	defer srv.Close()
	c := adminapi.NewClient(srv.URL, "secret")
	if err := c.PutPeers(context.Background(), adminapi.PeerSet{}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutFilter(context.Background(), adminapi.Filter{}); err != nil {
		t.Fatal(err)
	}
	if p := admintest.Last[adminapi.PeerSet](srv, "/v1/tailnet/peers"); p.Peers == nil {
		t.Error(`PUT /v1/tailnet/peers sent "peers": null; exitgw needs an array`)
	}
	if f := admintest.Last[adminapi.Filter](srv, "/v1/filter"); f.Rules == nil {
		t.Error(`PUT /v1/filter sent "rules": null; exitgw needs an array`)
	}
}

func TestGatewayErrorsAreNamedAndClassified(t *testing.T) {
	srv := admintest.New("secret")
	defer srv.Close()
	srv.Refuse("/v1/filter", "rules[3].dst[0]: prefix 1.2.3.4/33 is not a prefix")
	ctx := context.Background()

	err := adminapi.NewClient(srv.URL, "secret").PutFilter(ctx, adminapi.Filter{})
	var se *adminapi.StatusError
	if !errors.As(err, &se) || se.Code != 400 || se.Message != "rules[3].dst[0]: prefix 1.2.3.4/33 is not a prefix" {
		t.Fatalf("got %v; want a StatusError 400 carrying the gateway's message", err)
	}
	if !adminapi.Refused(err) {
		t.Error("a 400 is a refusal: resending the same body cannot help")
	}

	err = adminapi.NewClient(srv.URL, "wrong").PutTailnet(ctx, adminapi.Tailnet{})
	if !errors.As(err, &se) || se.Code != 401 || adminapi.Refused(err) {
		t.Errorf("got %v; a wrong token is a 401 and not a refusal of the content", err)
	}

	srv.Close()
	err = adminapi.NewClient(srv.URL, "secret").PostApproval(ctx, false)
	if err == nil || adminapi.Refused(err) {
		t.Errorf("got %v; an unreachable gateway is an error to retry", err)
	}
}

func TestTailnetPeersReadBackAsSentWhateverTheOrder(t *testing.T) {
	srv := admintest.New("secret")
	defer srv.Close()
	c := adminapi.NewClient(srv.URL, "secret")
	ctx := context.Background()
	sent := adminapi.PeerSet{Peers: []adminapi.Peer{
		{PublicKey: "b", AllowedIPs: []string{"100.64.0.6/32"}, Tags: []string{"tag:y", "tag:x"}},
		{PublicKey: "a", AllowedIPs: []string{"100.64.0.5/32"}, User: "alice@example.com", DiscoKey: "d"},
	}}
	if err := c.PutPeers(ctx, sent); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reordered := adminapi.PeerSet{Peers: []adminapi.Peer{sent.Peers[1], sent.Peers[0]}}
	reordered.Peers[1].Tags = []string{"tag:x", "tag:y"}
	if !adminapi.SamePeers(got, sent) || !adminapi.SamePeers(reordered, sent) {
		t.Errorf("GET /v1/tailnet/peers gave %+v; want the set sent, %+v", got, sent)
	}
	// IPv6 spelled the gateway's way (inet_ntop) is the same prefix.
	v6 := adminapi.PeerSet{Peers: []adminapi.Peer{{PublicKey: "a", AllowedIPs: []string{"100.64.0.5/32", "::102:304/128", "fd7a:115c:a1e0::5/128"}}}}
	gw := adminapi.PeerSet{Peers: []adminapi.Peer{{PublicKey: "a", AllowedIPs: []string{"::1.2.3.4/128", "100.64.0.5/32", "fd7a:115c:a1e0::5/128"}}}}
	if !adminapi.SamePeers(v6, gw) {
		t.Errorf("%+v and %+v are the same peers", v6, gw)
	}
	for _, changed := range []func(p *adminapi.Peer){
		func(p *adminapi.Peer) { p.AllowedIPs = []string{"100.64.0.7/32"} },
		func(p *adminapi.Peer) { p.AllowedIPs = append(p.AllowedIPs, "fd7a:115c:a1e0::5/128") },
		func(p *adminapi.Peer) { p.User = "bob@example.com" },
		func(p *adminapi.Peer) { p.DiscoKey = "" },
		func(p *adminapi.Peer) { p.Tags = []string{"tag:x"} },
		func(p *adminapi.Peer) { p.PublicKey = "c" },
	} {
		other := adminapi.PeerSet{Peers: slices.Clone(sent.Peers)}
		changed(&other.Peers[1])
		if adminapi.SamePeers(other, sent) {
			t.Errorf("%+v and %+v compare the same", other, sent)
		}
	}
	if adminapi.SamePeers(adminapi.PeerSet{Peers: sent.Peers[:1]}, sent) {
		t.Error("a set with a peer less compares the same")
	}
}
