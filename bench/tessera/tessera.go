// Package tessera adapts transparency-dev/tessera's POSIX driver to gavel's
// benchmark peer interface: the log a user who wants "append signed
// statements to a verifiable log, durably" would otherwise pick.
package tessera

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/gavelhq/gavel/engine/perf"
)

// Version is the tessera release this module pins (go.mod).
const Version = "v1.0.4"

// CheckpointInterval is how often a checkpoint (tessera's receipt) is
// published: tessera's own POSIX conformance server's setting (its library
// default is 10 s).
const CheckpointInterval = time.Second

// Peer is tessera with its default batching and the conformance server's
// checkpoint interval.
type Peer struct{}

// Name implements perf.Peer.
func (Peer) Name() string {
	return "tessera " + Version + " POSIX driver (fsync before an add resolves), one ES256 check per entry, default batching, checkpoint every " + CheckpointInterval.String()
}

// Open implements perf.Peer.
func (Peer) Open(ctx context.Context, dir string) (perf.PeerLog, error) {
	skey, _, err := note.GenerateKey(rand.Reader, "gavel-bench-peer")
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().WithCheckpointSigner(signer).WithCheckpointInterval(CheckpointInterval))
	if err != nil {
		cancel()
		return nil, err
	}
	return &log{appender: appender, shutdown: shutdown, reader: reader, cancel: cancel}, nil
}

type log struct {
	appender *tessera.Appender
	shutdown func(context.Context) error
	reader   tessera.LogReader
	cancel   context.CancelFunc
}

func (l *log) Append(ctx context.Context, entry []byte) (uint64, error) {
	idx, err := l.appender.Add(ctx, tessera.NewEntry(entry))()
	if err != nil {
		return 0, err
	}
	if idx.IsDup {
		return 0, fmt.Errorf("entry %d was a duplicate", idx.Index)
	}
	return idx.Index, nil
}

// Published reads the size line of the latest checkpoint (origin, size,
// root hash, then signatures: C2SP tlog-checkpoint).
func (l *log) Published(ctx context.Context) (uint64, error) {
	cp, err := l.reader.ReadCheckpoint(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	lines := bytes.SplitN(cp, []byte("\n"), 3)
	if len(lines) < 3 {
		return 0, fmt.Errorf("checkpoint of %d bytes has no size line", len(cp))
	}
	return strconv.ParseUint(string(lines[1]), 10, 64)
}

func (l *log) Close() error {
	err := l.shutdown(context.Background())
	l.cancel()
	return err
}
