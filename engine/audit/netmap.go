package audit

import (
	"bytes"
	"fmt"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/netmap"
)

// netmap re-executes a network-map entry — a NodeInfo publish, an
// acknowledgement or a flag day — against the state before it, with the
// limits recorded at genesis, and compares the write sets: the auditor
// re-derives the map and every flag day (its deadline check uses the
// entry's time).
func (r *Replayer) netmap(e *engine.Entry) error {
	lim, err := netmap.LoadLimits(r.state)
	if err != nil {
		return err
	}
	dir := netmap.TableDirectory{State: r.state, Table: netmap.NodesDirectoryTable}
	cmd, err := netmap.Decode(e.Kind, e.Input, dir, nil, lim)
	if err != nil {
		return fmt.Errorf("%s entry does not verify: %w", e.Kind, err)
	}
	if !bytes.Equal(cmd.Input(), e.Input) {
		return fmt.Errorf("%s entry's input is not in its canonical form", e.Kind)
	}
	eff, err := cmd.Execute(r.state, engine.Facts{TxID: e.TxID(), Time: e.Time()})
	if err != nil {
		return fmt.Errorf("re-execution refuses the %s entry: %w", e.Kind, err)
	}
	if eff.Replayed {
		return fmt.Errorf("the %s entry changes nothing: the ledger already held it", e.Kind)
	}
	if got := eff.Writes.Canonical(); !got.Equal(e.Writes) {
		return fmt.Errorf("write set differs from re-execution: %s", diffWrites(e.Writes, got))
	}
	if !bytes.Equal(eff.Result, e.Result) {
		return fmt.Errorf("recorded answer %s, re-executed %s", e.Result, eff.Result)
	}
	return nil
}
