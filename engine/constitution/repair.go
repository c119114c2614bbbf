package constitution

import (
	"encoding/json"
	"sync"

	"github.com/gavelhq/gavel/engine"
)

// defaultModule is the default constitution as one module, bundled once.
var defaultModule = sync.OnceValues(DefaultModule)

// restoreID names the simulated restoring proposal.
const restoreID = "restore-default-constitution"

// CheckRepairable decides whether a proposed constitution may take force:
// its module compiles, instantiates under the budget, and would accept a
// set_constitution proposal restoring the default constitution — validate
// says valid, resolve with every active member voting yes says Accepted,
// and apply writes the constitution. A constitution that fails this could
// brick governance. Each step is its own call under env's limits; the
// errors are typed (CodeConstitutionNotRepairable, or the safety net's).
func CheckRepairable(env Env, src string) error {
	con, err := CompileModule(src)
	if err != nil {
		return engine.Errorf(engine.KindInvalid, CodeConstitutionCompileError, "the constitution does not compile")
	}
	def, err := defaultModule()
	if err != nil {
		return engine.Wrap(engine.KindInternal, CodeScriptInternalError, err, "the default constitution does not bundle")
	}
	body, _ := json.Marshal(map[string]any{"actions": []any{map[string]any{
		"name": "set_constitution", "args": map[string]any{"constitution": def},
	}}})
	proposal := string(body)
	step := func(what string, err error) error {
		if err == nil {
			return nil
		}
		e := engine.AsError(err)
		if e.Kind != engine.KindInvalid {
			return e
		}
		return engine.Errorf(engine.KindInvalid, CodeConstitutionNotRepairable,
			"the constitution cannot restore the default: %s: %s: %s", what, e.Code, e.Message)
	}
	v, err := con.Validate(env, proposal)
	if err := step("validate", err); err != nil {
		return err
	}
	if !v.Valid {
		return engine.Errorf(engine.KindInvalid, CodeConstitutionNotRepairable,
			"the constitution cannot restore the default: validate refuses it: %s", truncate(v.Description, 512))
	}
	var votes []Vote
	proposer := ""
	if env.State != nil {
		err = env.State.Range(TableMembers, func(id string, rec []byte) bool {
			var m struct {
				Status string `json:"status"`
			}
			if json.Unmarshal(rec, &m) == nil && m.Status == MemberActive {
				votes = append(votes, Vote{MemberID: id, Vote: true})
			}
			return true
		})
		if err != nil {
			return engine.Wrap(engine.KindInternal, CodeStateReadFailed, err, "reading governance state failed")
		}
	}
	if len(votes) > 0 {
		proposer = votes[0].MemberID
	}
	state, err := con.Resolve(env, proposal, proposer, votes, restoreID)
	if err := step("resolve", err); err != nil {
		return err
	}
	if state != ProposalAccepted {
		return engine.Errorf(engine.KindInvalid, CodeConstitutionNotRepairable,
			"the constitution cannot restore the default: resolve says %s with every member in favour", state)
	}
	ws, err := con.Apply(env, proposal, restoreID)
	if err := step("apply", err); err != nil {
		return err
	}
	if _, ok := ws.Value(TableConstitution, ""); !ok {
		return engine.Errorf(engine.KindInvalid, CodeConstitutionNotRepairable,
			"the constitution cannot restore the default: apply does not write %s", TableConstitution)
	}
	return nil
}
