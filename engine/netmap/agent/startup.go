package agent

import (
	"crypto"
	"errors"

	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/engine/netmap"
)

// Start-up refusals, wrapped in typed errors so callers branch with
// errors.Is; the message is what the agent prints before exiting 1.
var (
	ErrPlatformTooLow     = errors.New("platform version below the network's minimum")
	ErrParametersMismatch = errors.New("network-parameters file contradicts the map")
	ErrNoParameters       = errors.New("no network parameters")
	ErrBadParametersFile  = errors.New("network-parameters file is not valid")
)

// File names in the agent's base folder.
const (
	ParametersFile       = "network-parameters"
	ParametersUpdateFile = "network-parameters-update"
)

// Startup is what the node has when it starts.
type Startup struct {
	PlatformVersion int
	// MapKey is the service's network-map key, which signs parameters.
	MapKey crypto.PublicKey
	// Parameters and Update are the files' bytes, nil when absent.
	Parameters, Update []byte
	// Advertised is the map's network_parameters_hash, "" when the map
	// cannot be reached (the node then starts on its file, as Corda).
	Advertised string
	Limits     netmap.Limits
}

// StartDecision says how the node proceeds.
type StartDecision struct {
	// Download: there is no file; fetch Advertised, store it as
	// network-parameters and decide again.
	Download bool
	// Promote: the update file is what the map advertises; it replaces
	// network-parameters (the restart after a flag day).
	Promote    bool
	Parameters netmap.NetworkParameters
	Hash       string
}

// DecideStart applies Corda's NetworkParametersReader rules and the
// platform-version check.
func DecideStart(s Startup) (StartDecision, error) {
	var d StartDecision
	if s.Parameters == nil {
		if s.Advertised == "" {
			return d, engine.Wrap(engine.KindUnavailable, "NoNetworkParameters", ErrNoParameters,
				"there is no network-parameters file and the network map cannot be reached")
		}
		return StartDecision{Download: true, Hash: s.Advertised}, nil
	}
	p, h, err := readSigned(s.Parameters, s.MapKey, s.Limits, ParametersFile)
	if err != nil {
		return d, err
	}
	d.Parameters, d.Hash = p, h
	if s.Advertised != "" && h != s.Advertised {
		if s.Update == nil {
			return d, engine.Wrap(engine.KindConflict, "NetworkParametersMismatch", ErrParametersMismatch,
				"the node is using network parameters with hash %s but the network map is advertising %s; "+
					"to move to the current parameters, delete the network-parameters file and restart", h, s.Advertised)
		}
		up, uh, err := readSigned(s.Update, s.MapKey, s.Limits, ParametersUpdateFile)
		if err != nil {
			return d, err
		}
		if uh != s.Advertised {
			return d, engine.Wrap(engine.KindConflict, "NetworkParametersMismatch", ErrParametersMismatch,
				"neither network-parameters (%s) nor network-parameters-update (%s) is the map's parameters %s", h, uh, s.Advertised)
		}
		d.Parameters, d.Hash, d.Promote = up, uh, true
	}
	if s.PlatformVersion < d.Parameters.MinimumPlatformVersion {
		return d, engine.Wrap(engine.KindForbidden, netmap.CodePlatformVersionTooLow, ErrPlatformTooLow,
			"the node's platform version %d is below the network's minimum_platform_version %d", s.PlatformVersion, d.Parameters.MinimumPlatformVersion)
	}
	return d, nil
}

// CheckDownloaded checks parameters fetched by hash before they are stored.
func CheckDownloaded(raw []byte, hash string, mapKey crypto.PublicKey, lim netmap.Limits) (netmap.NetworkParameters, error) {
	p, h, err := readSigned(raw, mapKey, lim, "downloaded parameters")
	if err != nil {
		return p, err
	}
	if h != hash {
		return p, engine.Wrap(engine.KindInvalid, "NetworkParametersMismatch", ErrParametersMismatch, "asked for parameters %s, got %s", hash, h)
	}
	return p, nil
}

func readSigned(raw []byte, key crypto.PublicKey, lim netmap.Limits, what string) (netmap.NetworkParameters, string, error) {
	p, h, err := netmap.VerifySignedParameters(raw, key, lim)
	if err != nil {
		e := engine.AsError(err)
		return p, "", &engine.Error{Kind: engine.KindInvalid, Code: e.Code, Message: what + " is not valid: " + e.Message,
			Err: errors.Join(ErrBadParametersFile, err)}
	}
	return p, h, nil
}
