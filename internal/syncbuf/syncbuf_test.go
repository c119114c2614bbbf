package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// Reads while others write see whole writes only, and the end holds every
// write (run with -race to check the locking).
func TestConcurrentWritesAndReads(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				b.Write([]byte("line\n"))
			}
		}()
	}
	for range 50 {
		if s := b.String(); len(s)%len("line\n") != 0 {
			t.Fatalf("a read saw a partial write: %q", s[len(s)-4:])
		}
	}
	wg.Wait()
	if got := strings.Count(b.String(), "line\n"); got != 800 {
		t.Fatalf("%d lines, want 800", got)
	}
}
