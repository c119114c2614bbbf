//go:build fault

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDescriptorFlood20000: 20,000 trickling connections from 40 addresses
// against a replica limited to 1024 descriptors (about 475 HTTP
// connections, 59 per address), while 8 clients register 4,000 statements,
// long enough for the server's read deadlines to cut tricklers off. A
// process may hold fewer descriptors than that here, so the flood runs in
// four helper processes of 5,000 connections each.
func TestDescriptorFlood20000(t *testing.T) {
	runDescriptorFlood(t, floodCase{fdLimit: 1024, perAddressConns: 59, sources: 40, conns: 20000, pause: 2 * time.Second,
		duringFlood: 4000, registerWorkers: 8, wide: helperFlood(4)})
}

const helperEnv = "GAVEL_FLOOD_HELPER"

// TestFloodHelper is a flood helper process's body when helperEnv is set
// (addr, first source, sources, connections, pause in ms); otherwise it has
// nothing to do. It prints "overall" once the total cap refuses it, then,
// when its stdin closes, stops and prints its counts as JSON.
func TestFloodHelper(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	var addr string
	var first, n, conns, pauseMs int
	if _, err := fmt.Sscanf(spec, "%s %d %d %d %d", &addr, &first, &n, &conns, &pauseMs); err != nil {
		t.Fatalf("%s=%q: %v", helperEnv, spec, err)
	}
	sources := loopbackSources(first + n)[first:]
	f := startFlood(addr, sources, conns, time.Duration(pauseMs)*time.Millisecond)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	for reported := false; ; {
		select {
		case <-done:
			b, _ := json.Marshal(f.finish())
			fmt.Printf("counts %s\n", b)
			return
		case <-time.After(50 * time.Millisecond):
			if !reported && f.overall.Load() {
				fmt.Println("overall")
				reported = true
			}
		}
	}
}

// helperFlood runs the wide flood in n helper processes, the sources and
// connections split between them.
func helperFlood(n int) func(t *testing.T, addr string, sources []net.IP, conns int, pause time.Duration) floodRun {
	return func(t *testing.T, addr string, sources []net.IP, conns int, pause time.Duration) floodRun {
		firstSource := int(sources[0].To4()[2])*256 + int(sources[0].To4()[3]) - 2
		h := &helpers{}
		for k := range n {
			lo, hi := k*len(sources)/n, (k+1)*len(sources)/n
			cmd := exec.Command(os.Args[0], "-test.run=^TestFloodHelper$", "-test.timeout=0")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d %d %d", helperEnv, addr, firstSource+lo, hi-lo, conns/n, pause.Milliseconds()))
			cmd.Stderr = os.Stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			p := &helper{cmd: cmd, stdin: stdin, counts: make(chan floodCounts, 1)}
			go p.read(stdout, &h.overall)
			h.procs = append(h.procs, p)
		}
		return h
	}
}

type helpers struct {
	procs   []*helper
	overall atomic.Bool
}

type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	counts chan floodCounts
}

func (p *helper) read(r io.Reader, overall *atomic.Bool) {
	sc := bufio.NewScanner(r)
	var c floodCounts
	for sc.Scan() {
		line := sc.Text()
		if line == "overall" {
			overall.Store(true)
		}
		if b, ok := strings.CutPrefix(line, "counts "); ok {
			json.Unmarshal([]byte(b), &c)
		}
	}
	p.counts <- c
}

func (h *helpers) overallSeen() bool { return h.overall.Load() }

func (h *helpers) finish() floodCounts {
	for _, p := range h.procs {
		p.stdin.Close()
	}
	var sum floodCounts
	for _, p := range h.procs {
		sum = sum.add(<-p.counts)
		p.cmd.Wait()
	}
	return sum
}
