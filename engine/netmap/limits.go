package netmap

import "github.com/gavelhq/gavel/engine"

// Limits are the schema limits of NodeInfo and parameters, each a named
// setting the service fixes (the lead wires them to flags).
type Limits struct {
	MaxNodeInfoBytes      int // the whole signed NodeInfo
	MaxAddresses          int
	MaxAddressBytes       int
	MaxLegalIdentities    int
	MaxLegalNameBytes     int
	MaxParametersBytes    int // canonical parameters JSON
	MaxNotaries           int
	MaxDescriptionBytes   int
	MaxWhitelistContracts int
	MaxPackageOwners      int
}

// DefaultLimits are the limits of a new service.
func DefaultLimits() Limits {
	return Limits{
		MaxNodeInfoBytes:      64 << 10,
		MaxAddresses:          16,
		MaxAddressBytes:       255,
		MaxLegalIdentities:    4,
		MaxLegalNameBytes:     512,
		MaxParametersBytes:    1 << 20,
		MaxNotaries:           256,
		MaxDescriptionBytes:   4096,
		MaxWhitelistContracts: 4096,
		MaxPackageOwners:      4096,
	}
}

// LimitsWrite records lim in TableLimits (genesis).
func LimitsWrite(lim Limits) engine.Write { return put(TableLimits, Singleton, lim) }

// LoadLimits reads the limits fixed at genesis; a service created before
// they were recorded has DefaultLimits.
func LoadLimits(st engine.StateReader) (Limits, error) {
	lim, ok, err := getJSON[Limits](st, TableLimits, Singleton)
	if err != nil || !ok {
		return DefaultLimits(), err
	}
	return lim, nil
}

// DefaultParameters are the parameters of a service started without any:
// Corda's defaults (platform version 1, no notaries, 10 MiB messages and
// transactions, a 30-day event horizon), epoch 1.
func DefaultParameters() NetworkParameters {
	return NetworkParameters{MinimumPlatformVersion: 1, Notaries: []Notary{}, MaxMessageSize: 10 << 20,
		MaxTransactionSize: 10 << 20, Epoch: 1, EventHorizon: DefaultEventHorizon}
}
