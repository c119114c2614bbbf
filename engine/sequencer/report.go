package sequencer

import (
	"time"

	"github.com/gavelhq/gavel/engine"
)

// RoundReport describes one committed round, for metrics: what the
// cumulative Stats and Timing cannot show, the spread of sizes and times.
type RoundReport struct {
	Entries    int           // entries in the round, signature entries included
	Signatures int           // signature entries among them
	Bytes      int           // bytes appended to the log
	Append     time.Duration // from sending the batch to its ack
	Apply      time.Duration // folding the round into the state
}

// report hands a landed round to Config.OnRound, if set. It runs on the
// sequencer's goroutine, so the hook must not block.
func (s *Sequencer) report(f *round, appendTook, applyTook time.Duration) {
	if s.cfg.OnRound == nil {
		return
	}
	r := RoundReport{Entries: len(f.entries), Append: appendTook, Apply: applyTook}
	for _, e := range f.entries {
		if e.Kind == engine.KindSignature {
			r.Signatures++
		}
	}
	for _, d := range f.data {
		r.Bytes += len(d)
	}
	s.cfg.OnRound(r)
}
