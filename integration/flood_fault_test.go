//go:build fault

package integration

import (
	"syscall"
	"testing"
	"time"
)

// TestDescriptorFlood20000: 20,000 trickling connections from 40 addresses
// against a replica limited to 1024 descriptors (about 475 HTTP
// connections, 59 per address), while 8 clients register statements. The
// test process needs a descriptor per flood connection: it raises its own
// limit, which needs the hard limit (or the right to raise it) above that.
func TestDescriptorFlood20000(t *testing.T) {
	const conns = 20000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if want := uint64(conns + 4096); lim.Cur < want {
		lim.Cur, lim.Max = want, max(lim.Max, want)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("the flood needs %d descriptors in the test process: %v", want, err)
		}
	}
	runDescriptorFlood(t, floodCase{fdLimit: 1024, perAddressConns: 59, sources: 40, conns: conns, pause: 2 * time.Second,
		duringFlood: 500, registerWorkers: 8})
}
