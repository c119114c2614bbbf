package main

import (
	"fmt"
	"os"
	"syscall"
)

// minFDLimit is the fewest descriptors a replica starts with: the embedded
// NATS server, JetStream's files, pebble and a few HTTP connections.
const minFDLimit = 64

// maxFDLimit bounds a soft limit taken from an unlimited hard limit, which
// the kernel refuses for RLIMIT_NOFILE (fs.nr_open is 1 Mi by default).
const maxFDLimit = 1 << 20

// setFDLimit sets the soft RLIMIT_NOFILE to want, or to the hard limit when
// want is 0, and returns the soft and hard limits in force.
func setFDLimit(want uint64) (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	target := min(lim.Max, maxFDLimit)
	if want > 0 {
		if want > lim.Max {
			return 0, 0, fmt.Errorf("--fd-limit %d is over the hard limit %d", want, lim.Max)
		}
		target = want
	}
	if lim.Cur != target {
		lim.Cur = target
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, 0, fmt.Errorf("set the descriptor limit to %d: %w", target, err)
		}
	}
	return lim.Cur, lim.Max, nil
}

// openFDs counts the process's open descriptors (0 where /proc is absent).
func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(entries) - 1 // the one ReadDir itself held
}

// connBudget splits the descriptors left under the soft limit. Half stay
// for the embedded NATS server and pebble, whose failure to open a file
// stops every write: a quarter of that half may be NATS client
// connections, the rest is JetStream's and pebble's files. The other half
// bounds HTTP connections, the answered refusals included.
func connBudget(soft uint64, open int) (maxConns, refuseSlots, natsConns int) {
	free := int(min(soft, maxFDLimit)) - open
	refuseSlots = min(max(free/32, 1), 64)
	maxConns = min(max(free/2-refuseSlots, 1), 16384)
	natsConns = min(max(free/8, 8), 16384)
	return maxConns, refuseSlots, natsConns
}

// defaultPerIP is the share of the HTTP connections one client address
// may hold unless --max-conns-per-ip says otherwise.
func defaultPerIP(maxConns int) int { return max(maxConns/8, 1) }
