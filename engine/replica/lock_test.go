package replica_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gavelhq/gavel/engine/replica"
)

// A folder's lock is held once: a second taker learns who holds it, and
// after Release the folder can be taken again.
func TestLockDirIsExclusive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := replica.LockDir(dir, "gavel audit replay", false); err == nil {
		t.Fatal("locked a folder that does not exist without create")
	}
	l, err := replica.LockDir(dir, "gavel serve", true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = replica.LockDir(dir, "gavel audit replay", false)
	var inUse *replica.InUseError
	if !errors.Is(err, replica.ErrInUse) || !errors.As(err, &inUse) {
		t.Fatalf("second lock: %v, want InUseError", err)
	}
	want := dir + " is in use by another gavel serve (pid " + strconv.Itoa(os.Getpid()) + ")"
	if inUse.PID != os.Getpid() || inUse.By != "gavel serve" || err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	l.Release()
	l.Release() // twice is harmless
	again, err := replica.LockDir(dir, "gavel audit replay", false)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.Release()
}

// A second replica on a folder is refused before it opens anything, and
// the first keeps serving.
func TestOpenRefusesALockedFolder(t *testing.T) {
	dir := t.TempDir()
	r, err := open(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := open(t, dir); !errors.Is(err, replica.ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	if _, err := r.Network(t.Context()); err != nil {
		t.Fatalf("the first replica stopped serving: %v", err)
	}
}

// A busy NATS port fails Open at once, naming the address, before the
// service identity or any NATS key is written.
func TestOpenBusyNATSPortWritesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	_, err = replica.Open(t.Context(), replica.Config{DataDir: dir, NATSListen: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Open on a busy port: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != replica.LockFile {
			t.Errorf("%s was written", e.Name())
		}
	}
}
