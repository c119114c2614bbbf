package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// notRun is how a README shell block says it is not for this test: its
// first line is "# not run: REASON".
const notRun = "# not run:"

// shellBlock is a ```sh block of the README.
type shellBlock struct {
	line  int // README line of the block's first command line
	lines []string
	run   bool
}

func readmeBlocks(t *testing.T, readme []byte) []shellBlock {
	t.Helper()
	var blocks []shellBlock
	var cur *shellBlock
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &shellBlock{line: n + 1, run: true}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			if len(cur.lines) == 0 && strings.HasPrefix(line, notRun) {
				if strings.TrimSpace(strings.TrimPrefix(line, notRun)) == "" {
					t.Errorf("README.md:%d: a block that is not run must say why", n)
				}
				cur.run = false
			}
			cur.lines = append(cur.lines, line)
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: unclosed shell block", cur.line-1)
	}
	return blocks
}

// TestReadme follows the README as a newcomer would: every ```sh block not
// marked "# not run:", in order, in one bash session, in an empty folder
// with gavel on PATH and the clone's testdata beside it, against a real
// `gavel serve --data gavel-data` on free ports. The first command that
// fails fails the test, named with its README line.
func TestReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(readme, []byte("../shared")) {
		t.Error("README.md points at ../shared, which a clone does not have")
	}
	blocks := readmeBlocks(t, readme)
	if len(blocks) == 0 || !strings.Contains(strings.Join(blocks[0].lines, "\n"), "go run ./cmd/gavel serve") ||
		!strings.Contains(strings.Join(blocks[0].lines, "\n"), "go test ./...") {
		t.Fatal("the README's first shell block is not the quick start (go run ./cmd/gavel serve, go test ./...)")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README needs %s: %v", tool, err)
		}
	}

	work := t.TempDir()
	testdata, err := filepath.Abs("../testdata")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testdata, filepath.Join(work, "testdata")); err != nil {
		t.Fatal(err)
	}
	bin := gavelBinary(t)
	startServer(t, filepath.Join(work, "gavel-data"))

	// The script: each runnable block's lines, and for each script line
	// the README line it came from.
	var script strings.Builder
	script.WriteString("set -euo pipefail\ntrap 'echo \"README-FAILED $LINENO $BASH_COMMAND\" >&2' ERR\n")
	origin := map[int]int{}
	sline := 3
	ran := 0
	for _, b := range blocks {
		if !b.run {
			continue
		}
		ran++
		for i, l := range b.lines {
			script.WriteString(l + "\n")
			origin[sline] = b.line + i
			sline++
		}
	}
	if ran == 0 {
		t.Fatal("no README block is run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the README's commands did not finish in 2 minutes\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	if err != nil {
		where := "an unknown line"
		for _, l := range strings.Split(stderr.String(), "\n") {
			if rest, ok := strings.CutPrefix(l, "README-FAILED "); ok {
				n, command, _ := strings.Cut(rest, " ")
				i, _ := strconv.Atoi(n)
				where = fmt.Sprintf("README.md:%d: %s", origin[i], command)
			}
		}
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", where, err, stdout.String(), stderr.String())
	}
	t.Logf("ran %d README blocks:\n%s", ran, stdout.String())
}
