package netmap

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
