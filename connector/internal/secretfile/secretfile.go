// Package secretfile reads the connector's secret files (the admin token, the auth key, the
// WireGuard and disco keys) as exitgw reads its own (common/bounded_read.h, read_secret_file in
// control/admin/secret_file.h): a regular file, opened non-blocking so a FIFO at the path
// cannot hang start-up, owner-only (group or others may neither read nor write it), at most
// a bounded size, and not only white space. Errors name the file and never echo its content.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// MaxBytes bounds every secret file: a token, a key or an auth key is far smaller.
const MaxBytes = 4096

// Read returns the trimmed content of the secret file at path; what names it in errors
// ("admin token file").
func Read(path, what string) (string, error) {
	name := fmt.Sprintf("the %s %s", what, path)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) { // a socket: never a file
			return "", fmt.Errorf("%s is not a regular file", name)
		}
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is %s, not a regular file", name, kind(st.Mode()))
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %04o, so group or others may read it; it must be owner-only: chmod 600 %s", name, perm, path)
	}
	if st.Size() > MaxBytes {
		return "", fmt.Errorf("%s has %d bytes, more than the %d allowed", name, st.Size(), MaxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > MaxBytes {
		return "", fmt.Errorf("%s grew past %d bytes while being read", name, MaxBytes)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return s, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "not a regular file"
	}
}
