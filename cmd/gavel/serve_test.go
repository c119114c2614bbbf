package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every serve setting with a range is refused outside it, with a message
// naming the flag and the range, before the data folder is touched.
func TestServeRefusesSettingsOutOfRange(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-batch", "5000"}, "--max-batch 5000 is out of range 2..1000"},
		{[]string{"--max-batch", "1"}, "--max-batch 1 is out of range 2..1000"},
		{[]string{"--sign-every", "0"}, "--sign-every 0 is out of range 1..1000000"},
		{[]string{"--sign-interval", "0s"}, "--sign-interval 0s is out of range 1ms..24h0m0s"},
		{[]string{"--sign-interval", "25h"}, "--sign-interval 25h0m0s is out of range 1ms..24h0m0s"},
		{[]string{"--queue", "0"}, "--queue 0 is out of range 1..1000000"},
		{[]string{"--linger", "5s"}, "--linger 5s is out of range 0s..1s"},
		{[]string{"--linger", "-1ms"}, "--linger -1ms is out of range 0s..1s"},
		{[]string{"--max-statement-bytes", "0"}, "--max-statement-bytes 0 is out of range 1024..7340032"},
		{[]string{"--max-gov-bytes", "100000000"}, "--max-gov-bytes 100000000 is out of range 1024..7340032"},
		{[]string{"--max-conns", "-1"}, "--max-conns -1 is out of range 0..1048576"},
		{[]string{"--max-conns-per-ip", "-1"}, "--max-conns-per-ip -1 is out of range 0..1048576"},
		{[]string{"--max-conns", "10", "--max-conns-per-ip", "11"}, "--max-conns-per-ip 11 is over --max-conns 10"},
		{[]string{"--fd-limit", "10"}, "--fd-limit 10 is below the 64 a replica needs"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := run(append([]string{"serve", "--data", data}, tc.args...)...)
			if code != exitUsage || !strings.Contains(errOut, "gavel serve: "+tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, errOut, tc.want)
			}
		})
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("the data folder was created: %v", err)
	}
}

func TestConnBudget(t *testing.T) {
	for _, tc := range []struct {
		soft                uint64
		open                int
		conns, refuse, nats int
	}{
		{256, 12, 115, 7, 30},
		{1024, 12, 475, 31, 126},
		{20000, 11, 9930, 64, 2498},
		{1 << 20, 11, 16384, 64, 16384},
		{1 << 40, 11, 16384, 64, 16384}, // an unlimited hard limit
		{64, 60, 1, 1, 8},               // never zero
	} {
		conns, refuse, nats := connBudget(tc.soft, tc.open)
		if conns != tc.conns || refuse != tc.refuse || nats != tc.nats {
			t.Errorf("connBudget(%d, %d) = %d, %d, %d; want %d, %d, %d", tc.soft, tc.open, conns, refuse, nats, tc.conns, tc.refuse, tc.nats)
		}
		// Half the free descriptors stay for NATS, JetStream and pebble,
		// and NATS connections take at most a quarter of that half.
		if free := int(min(tc.soft, maxFDLimit)) - tc.open; free > 64 && (conns+refuse > free/2+1 || nats > free/8) {
			t.Errorf("connBudget(%d, %d) splits %d free as %d, %d, %d", tc.soft, tc.open, free, conns, refuse, nats)
		}
	}
}
