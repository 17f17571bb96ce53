package secretfile_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"exitgw/connector/internal/secretfile"
)

func write(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// read runs Read with a deadline, so a read that blocks (a FIFO without a writer) fails the
// test instead of hanging it.
func read(t *testing.T, path string) (string, error) {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := secretfile.Read(path, "admin token file")
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-time.After(2 * time.Second):
		t.Fatalf("reading %s blocked", path)
		return "", nil
	}
}

func wantError(t *testing.T, path, want string) {
	t.Helper()
	s, err := read(t, path)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Read(%s) = %q, %v; want an error containing %q", path, s, err, want)
	}
}

func TestAnOwnerOnlyFileIsReadTrimmed(t *testing.T) {
	path := write(t, "token", "  0123456789abcdef\n", 0o600)
	if s, err := read(t, path); err != nil || s != "0123456789abcdef" {
		t.Errorf("Read = %q, %v", s, err)
	}
	if s, err := read(t, write(t, "ro", "tok\n", 0o400)); err != nil || s != "tok" {
		t.Errorf("a read-only owner file: %q, %v", s, err)
	}
}

func TestAFileGroupOrOthersMayReadIsRefusedWithoutEchoingIt(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o644} {
		path := write(t, "token", "s3cret-token-value\n", mode)
		_, err := read(t, path)
		if err == nil || !strings.Contains(err.Error(), "owner-only: chmod 600") {
			t.Errorf("mode %04o: %v; want an owner-only refusal", mode, err)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error echoes the secret: %v", err)
		}
	}
}

func TestWhatIsNotASmallRegularFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	wantError(t, fifo, "is a FIFO, not a regular file")
	wantError(t, dir, "is a directory, not a regular file")
	wantError(t, "/dev/zero", "is a character device, not a regular file")
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wantError(t, sock, "not a regular file")
	wantError(t, write(t, "big", strings.Repeat("x", secretfile.MaxBytes+1), 0o600),
		"more than the 4096 allowed")
	wantError(t, write(t, "empty", " \n", 0o600), "is empty")
	wantError(t, filepath.Join(dir, "missing"), "no such file")
}
