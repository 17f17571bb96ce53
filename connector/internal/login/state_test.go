package login

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

func TestMachineKeySurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first.MachineKey.IsZero() || !first.MachineKey.Equal(second.MachineKey) || first.BackendLogID != second.BackendLogID {
		t.Errorf("the machine key or backend log ID changed across a restart")
	}
	if fi, err := os.Stat(filepath.Join(dir, stateFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v, mode %v; want 0600", err, fi.Mode())
	}
}

func TestPersistIsKeptWithoutTheNodePrivateKey(t *testing.T) {
	dir := t.TempDir()
	st, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	nodeKey := key.NewNode()
	p := st.persistFor(nodeKey)
	p.NodeID = tailcfg.StableNodeID("n123")
	if !st.remember(p) {
		t.Fatal("a new Persist must be remembered")
	}
	if st.remember(p) {
		t.Error("the same Persist again is no change")
	}
	if err := st.Save(dir); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(filepath.Join(dir, stateFileName))
	secret, _ := nodeKey.MarshalText()
	if strings.Contains(string(text), strings.TrimPrefix(string(secret), "privkey:")) {
		t.Fatal("the state file holds the gateway's WireGuard private key")
	}
	again, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.persistFor(nodeKey); got.NodeID != "n123" || !got.PrivateNodeKey.Equal(nodeKey) {
		t.Errorf("restored Persist: node %q, key %v; want n123 and the WireGuard key", got.NodeID, got.PrivateNodeKey.Public())
	}
	if got := again.persistFor(key.NewNode()); got.NodeID != "" {
		t.Error("a saved Persist must not be reused for another node key")
	}
}

func TestDamagedStateIsAClearError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, stateFileName), []byte("{not json"), 0o600)
	if _, err := LoadState(dir); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("got %v; want an error that says what to do", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(text), 0o600)
		return path
	}
	raw := make([]byte, 32)
	raw[0] = 7
	good := write("good", base64.StdEncoding.EncodeToString(raw)+"\n")
	k, err := ReadNodeKey(good)
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := k.MarshalText(); !strings.HasPrefix(string(text), "privkey:07000000") {
		t.Errorf("node key %s is not the file's 32 bytes", text)
	}
	if _, err := ReadDiscoKey(good); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"short": base64.StdEncoding.EncodeToString(raw[:31]),
		"text":  "not base64 at all",
		"zeros": base64.StdEncoding.EncodeToString(make([]byte, 32)),
	} {
		if _, err := ReadNodeKey(write(name, text)); err == nil {
			t.Errorf("%s: a bad key file was accepted", name)
		}
	}
	if _, err := ReadNodeKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing key file was accepted")
	}
}
