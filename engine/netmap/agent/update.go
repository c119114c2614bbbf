package agent

import (
	"crypto"

	"github.com/gavelhq/gavel/engine/netmap"
)

// Update is one advertised update as `gavel node updates` prints it (one
// JSON line each) and the agent keeps it.
type Update struct {
	Hash           string                   `json:"hash"`
	Description    string                   `json:"description"`
	UpdateDeadline string                   `json:"update_deadline"`
	Parameters     netmap.NetworkParameters `json:"parameters"`
	AutoAccepted   bool                     `json:"auto_accepted"`
	Accepted       bool                     `json:"accepted"`
}

// Advertised turns the map's parameters_update and the signed parameters
// fetched by its hash into an Update (Corda's ParametersUpdateInfo),
// deciding auto-acceptance against the parameters in force. The signed
// parameters must be the map key's and have the advertised hash; the
// caller sends the acknowledgement when AutoAccepted.
func Advertised(current netmap.NetworkParameters, up netmap.UpdatePayload, signed []byte, mapKey crypto.PublicKey, lim netmap.Limits, pol Policy) (Update, error) {
	p, err := CheckDownloaded(signed, up.NewParametersHash, mapKey, lim)
	if err != nil {
		return Update{}, err
	}
	auto := CanAutoAccept(current, p, pol)
	return Update{Hash: up.NewParametersHash, Description: up.Description, UpdateDeadline: up.UpdateDeadline,
		Parameters: p, AutoAccepted: auto, Accepted: auto}, nil
}
