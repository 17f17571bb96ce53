package login_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"

	"exitgw/connector/internal/login"
)

func waitNetmap(t *testing.T, c *login.Client) login.Snapshot {
	t.Helper()
	deadline := time.After(45 * time.Second)
	for {
		if s := c.Snapshot(); s.NetMap != nil {
			return s
		}
		select {
		case <-c.Changed():
		case <-deadline:
			t.Fatalf("no netmap; last status %+v", c.Snapshot())
		}
	}
}

// A restarted connector is the same machine and the same node: the machine key comes from
// the state directory and the node key is exitgw's WireGuard key, so the server does not
// see a new node (and a single-use auth key is not needed again).
func TestRestartKeepsTheMachineAndTheNode(t *testing.T) {
	ctl := &testcontrol.Server{RequireAuthKey: "tskey-once", Logf: func(string, ...any) {}}
	ctl.HTTPTestServer = httptest.NewUnstartedServer(ctl)
	ctl.HTTPTestServer.Start()
	defer ctl.HTTPTestServer.Close()

	dir := t.TempDir()
	nodeKey := key.NewNode()
	cfg := login.Config{ServerURL: ctl.HTTPTestServer.URL, AuthKey: "tskey-once", StateDir: dir,
		NodeKey: nodeKey, Hostname: "gw", Logf: t.Logf}
	first, err := login.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := waitNetmap(t, first)
	if s.NetMap.NodeKey != nodeKey.Public() || s.Persist.PrivateNodeKey().Public() != nodeKey.Public() {
		t.Fatalf("logged in as %v, want the WireGuard key %v", s.NetMap.NodeKey, nodeKey.Public())
	}
	machine := ctl.Node(nodeKey.Public()).Machine
	first.Close()

	second, err := login.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitNetmap(t, second)
	if n := ctl.NumNodes(); n != 1 {
		t.Errorf("the server has %d nodes after a restart, want 1", n)
	}
	if got := ctl.Node(nodeKey.Public()).Machine; got != machine {
		t.Errorf("machine key %v after a restart, want %v", got, machine)
	}
}

func TestWrongAuthKeyIsAnErrorStatus(t *testing.T) {
	ctl := &testcontrol.Server{RequireAuthKey: "tskey-right", Logf: func(string, ...any) {}}
	ctl.HTTPTestServer = httptest.NewUnstartedServer(ctl)
	ctl.HTTPTestServer.Start()
	defer ctl.HTTPTestServer.Close()
	c, err := login.Start(login.Config{ServerURL: ctl.HTTPTestServer.URL, AuthKey: "tskey-wrong", StateDir: t.TempDir(),
		NodeKey: key.NewNode(), Hostname: "gw", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.After(30 * time.Second)
	for c.Snapshot().Err == nil {
		select {
		case <-c.Changed():
		case <-deadline:
			t.Fatal("no error status for a refused auth key")
		}
	}
	if s := c.Snapshot(); s.NetMap != nil || s.LoggedIn {
		t.Errorf("logged in with a wrong auth key: %+v", s)
	}
	t.Logf("error status: %v", c.Snapshot().Err)
}
