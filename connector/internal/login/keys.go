// Package login logs exitgw into a coordination server: key files, the state directory and
// the control client (tailscale.com/control/controlclient's Auto).
package login

import (
	"bytes"
	"encoding/base64"
	"fmt"

	"go4.org/mem"
	"tailscale.com/types/key"

	"exitgw/connector/internal/secretfile"
)

// readKey32 reads a wg(8)-style key file: one line, base64 of 32 bytes, in an owner-only regular
// file as exitgw demands of its own key files.
func readKey32(path, what string) ([32]byte, error) {
	var raw [32]byte
	text, err := secretfile.Read(path, what)
	if err != nil {
		return raw, err
	}
	decoded, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(decoded) != 32 {
		return raw, fmt.Errorf("the %s %s is not one base64 key of 32 bytes as `wg genkey` writes it", what, path)
	}
	copy(raw[:], decoded)
	if bytes.Equal(raw[:], make([]byte, 32)) {
		return raw, fmt.Errorf("the %s %s is all zeros", what, path)
	}
	return raw, nil
}

// ReadNodeKey reads exitgw's WireGuard private key (--private_key_file): it is the node key.
func ReadNodeKey(path string) (key.NodePrivate, error) {
	raw, err := readKey32(path, "WireGuard key file")
	if err != nil {
		return key.NodePrivate{}, err
	}
	return key.NodePrivateFromRaw32(mem.B(raw[:])), nil
}

// ReadDiscoKey reads exitgw's disco private key (--disco_private_key_file).
func ReadDiscoKey(path string) (key.DiscoPrivate, error) {
	raw, err := readKey32(path, "disco key file")
	if err != nil {
		return key.DiscoPrivate{}, err
	}
	return key.DiscoPrivateFromRaw32(mem.B(raw[:])), nil
}
