//go:build fault

package replica_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/audit"
	"github.com/gavelhq/gavel/engine/exec"
	"github.com/gavelhq/gavel/engine/issuer"
	"github.com/gavelhq/gavel/engine/natslog"
	"github.com/gavelhq/gavel/engine/receipt"
	"github.com/gavelhq/gavel/engine/replica"
	"github.com/gavelhq/gavel/handlers"
)

// mountTmpfs mounts a tmpfs of size bytes and unmounts it with the test.
func mountTmpfs(t *testing.T, size int) string {
	if os.Geteuid() != 0 {
		t.Skip("the full-disk test mounts a tmpfs: it needs root (run `sudo task test:fault`)")
	}
	dir := t.TempDir()
	if out, err := osexec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := osexec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	return dir
}

// fill writes path until the file system is full, to the last byte.
func fill(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for len(buf) > 0 {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			buf = buf[:len(buf)/2] // down to single bytes
		}
	}
	return n, f.Sync()
}

// A small tmpfs filled to the last byte while registrations run: writes
// are refused at once naming the cause, /node/network says so, and once
// space is freed the replica serves again by itself; every acknowledged
// entry's receipt verifies and the auditor's replay succeeds.
func TestFaultFullDisk(t *testing.T) {
	dir := mountTmpfs(t, 48<<20)
	r, err := replica.Open(context.Background(), replica.Config{DataDir: filepath.Join(dir, "data"), NATSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	iss, err := issuer.New("ES256", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[engine.TxID][]byte{} // txid → the statement
	refused := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				st, err := iss.Sign(fmt.Sprintf("w%d-%d", w, i), "text/plain", make([]byte, 2048), time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				res, err := r.RegisterStatement(context.Background(), st)
				mu.Lock()
				if err != nil {
					refused[engine.AsError(err).Code]++
					if engine.KindOf(err) != engine.KindUnavailable {
						t.Errorf("refused as %v", err)
					}
				} else {
					var out struct{ TxID string }
					if err := json.Unmarshal(res, &out); err != nil {
						t.Error(err)
					}
					tx, err := engine.ParseTxID(out.TxID)
					if err != nil {
						t.Error(err)
					}
					acked[tx] = st
				}
				mu.Unlock()
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor(t, func() bool { return count() > 20 })

	filler := filepath.Join(dir, "filler")
	if _, err := fill(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		info, _ := r.Network(context.Background())
		return info.WriteError != nil && info.WriteError.Code == "StorageFull"
	})
	info, _ := r.Network(context.Background())
	if info.Writable {
		t.Fatalf("writable with a write error: %+v", info)
	}
	// While full, a write is refused at once, naming the cause.
	st, _ := iss.Sign("while-full", "text/plain", []byte("x"), time.Now())
	if _, err := r.RegisterStatement(context.Background(), st); !errors.Is(err, natslog.ErrStorageFull) || engine.AsError(err).Code != "StorageFull" {
		t.Fatalf("while full: %v", err)
	}
	// And over HTTP: 503 naming the cause, with Retry-After, and
	// /node/network says the replica cannot write.
	srv := httptest.NewServer(handlers.NewHTTP(r, handlers.DefaultLimits(), slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/entries", "application/cose", bytes.NewReader(st))
	if err != nil {
		t.Fatal(err)
	}
	var body handlers.ErrorBody
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || body.Error.Code != "StorageFull" {
		t.Fatalf("POST /entries while full: %d %q %+v", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, err = http.Get(srv.URL + "/node/network")
	if err != nil {
		t.Fatal(err)
	}
	var network map[string]any
	json.NewDecoder(resp.Body).Decode(&network)
	resp.Body.Close()
	we, _ := network["write_error"].(map[string]any)
	if network["writable"] != false || we["code"] != "StorageFull" || we["since"] == nil || we["message"] == "" {
		t.Fatalf("/node/network while full: %v", network)
	}
	full := count()

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { info, _ := r.Network(context.Background()); return info.Writable })
	waitFor(t, func() bool { return count() > full+50 }) // serving again, no restart
	close(stop)
	wg.Wait()

	// Every acknowledged entry gets its signature, and its receipt verifies.
	var last uint64
	for tx := range acked {
		last = max(last, tx.Seqno)
	}
	waitFor(t, func() bool { return r.Store().Meta().LastSignature > last })
	key := r.Identity().Cert.PublicKey
	for tx, st := range acked {
		rcpt, err := r.Receipt(context.Background(), tx)
		if err != nil {
			t.Fatalf("receipt %s: %v", tx, err)
		}
		v, err := receipt.Verify(rcpt, key)
		if err != nil {
			t.Fatalf("receipt %s: %v", tx, err)
		}
		if lt, err := v.Leaf.TxID(); err != nil || lt != tx {
			t.Fatalf("receipt for %s proves %s (%v)", tx, lt, err)
		}
		if _, err := r.TransparentStatement(context.Background(), tx); err != nil {
			t.Fatalf("statement %s: %v", tx, err)
		}
		_ = st // registered as is; its receipt is checked above
	}
	// The auditor replays the whole log to the replica's root.
	js, _ := jetstream.New(r.SequencerConn())
	rp := audit.NewReplayer(func(raw []byte, f engine.Facts) (engine.Command, error) { return exec.VerifyStatement(raw, f.Time) })
	if err := natslog.NewReader(js).Range(context.Background(), 1, rp.Add); err != nil {
		t.Fatalf("audit replay: %v", err)
	}
	sum := rp.Summary()
	root := r.Store().Tree().Root()
	if sum.Root != hex.EncodeToString(root[:]) || sum.Entries != r.Store().Meta().Seqno {
		t.Fatalf("audit %+v, replica at %d root %x", sum, r.Store().Meta().Seqno, root)
	}
	t.Logf("%d acknowledged (%d before the disk filled), refused %v, %d entries audited", len(acked), full, refused, sum.Entries)
}

// lines is a slog handler that keeps the messages it is given.
type lines struct {
	mu   *sync.Mutex
	msgs *[]string
}

func (l lines) Enabled(context.Context, slog.Level) bool { return true }
func (l lines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.msgs = append(*l.msgs, r.Message)
	return nil
}
func (l lines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l lines) WithGroup(string) slog.Handler      { return l }

func (l lines) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range *l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// A replica started on a full disk says so once and waits; freed space
// lets it start, with its genesis.
func TestFaultStartOnFullDisk(t *testing.T) {
	dir := mountTmpfs(t, 16<<20)
	filler := filepath.Join(dir, "filler")
	if _, err := fill(filler); err != nil {
		t.Fatal(err)
	}
	log := lines{&sync.Mutex{}, new([]string)}
	type opened struct {
		r   *replica.Replica
		err error
	}
	done := make(chan opened, 1)
	go func() {
		r, err := replica.Open(context.Background(), replica.Config{DataDir: filepath.Join(dir, "data"), NATSListen: "127.0.0.1:0", Logger: slog.New(log)})
		done <- opened{r, err}
	}()
	const waiting = "the data folder's disk is full: waiting for space"
	waitFor(t, func() bool { return log.count(waiting) > 0 })
	select {
	case o := <-done:
		t.Fatalf("opened on a full disk: %v", o.err)
	default:
	}
	if n := log.count(waiting); n != 1 {
		t.Fatalf("said so %d times", n)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	defer o.r.Close()
	if m := o.r.Store().Meta(); m.Seqno == 0 {
		t.Fatalf("no genesis: %+v", m)
	}
}
