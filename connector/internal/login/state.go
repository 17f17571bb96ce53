package login

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"tailscale.com/types/key"
	"tailscale.com/types/persist"
)

const stateFileName = "connector-state.json"

// State is what survives a restart, in <state-dir>/connector-state.json (mode 0600). The
// machine key identifies this machine to the server; Persist is the control client's own
// (node ID, tailnet-lock key), kept without node private keys so the gateway's WireGuard key
// is not copied: NodeKey records which public node key Persist belongs to.
type State struct {
	MachineKey   key.MachinePrivate `json:"machine_key"`
	BackendLogID string             `json:"backend_log_id"`
	NodeKey      key.NodePublic     `json:"node_key,omitzero"`
	Persist      *persist.Persist   `json:"persist,omitempty"`
}

// LoadState reads the state file, or creates a fresh one (new machine key) if there is none.
func LoadState(dir string) (*State, error) {
	path := filepath.Join(dir, stateFileName)
	text, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var id [32]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, fmt.Errorf("making a backend log ID: %w", err)
		}
		st := &State{MachineKey: key.NewMachine(), BackendLogID: hex.EncodeToString(id[:])}
		if err := st.Save(dir); err != nil {
			return nil, err
		}
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the state: %w", err)
	}
	var st State
	if err := json.Unmarshal(text, &st); err != nil {
		return nil, fmt.Errorf("the state file %s is damaged (%w); move it away to register as a new machine", path, err)
	}
	if st.MachineKey.IsZero() || st.BackendLogID == "" {
		return nil, fmt.Errorf("the state file %s has no machine key or backend log ID; move it away to register as a new machine", path)
	}
	return &st, nil
}

// Save writes the state atomically (temporary file, fsync, rename).
func (st *State) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the state directory: %w", err)
	}
	text, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, stateFileName+".*")
	if err != nil {
		return fmt.Errorf("writing the state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(text, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, stateFileName)); err != nil {
		return fmt.Errorf("writing the state: %w", err)
	}
	return nil
}

// persistFor is the Persist to start the control client with: the saved one (if it belongs
// to this node key) with the gateway's WireGuard key as PrivateNodeKey.
func (st *State) persistFor(nodeKey key.NodePrivate) persist.Persist {
	var p persist.Persist
	if st.Persist != nil && st.NodeKey == nodeKey.Public() {
		p = *st.Persist.Clone()
	}
	p.PrivateNodeKey = nodeKey
	p.OldPrivateNodeKey = key.NodePrivate{}
	return p
}

// remember records p (as the control client reports it) without its node private keys. It
// reports whether anything changed.
func (st *State) remember(p persist.Persist) bool {
	pub := p.PrivateNodeKey.Public()
	p.PrivateNodeKey = key.NodePrivate{}
	p.OldPrivateNodeKey = key.NodePrivate{}
	if st.Persist != nil && st.NodeKey == pub && st.Persist.Equals(&p) {
		return false
	}
	st.NodeKey = pub
	st.Persist = &p
	return true
}
