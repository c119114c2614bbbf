package cose

// Error codes returned by this package, all with engine.KindInvalid.
const (
	// CodeInvalidCOSE: the bytes are not a strict, tagged COSE_Sign1.
	CodeInvalidCOSE = "InvalidCOSE"
	// CodeInvalidStatement: not a signed statement (bad structure, missing or
	// malformed header).
	CodeInvalidStatement = "InvalidStatement"
	// CodeUnsupportedAlgorithm: alg is not one gavel verifies.
	CodeUnsupportedAlgorithm = "UnsupportedAlgorithm"
	// CodeInvalidIssuer: the did:x509 issuer does not resolve against x5chain
	// (returned as is from package didx509).
	CodeInvalidIssuer = "InvalidIssuer"
	// CodeInvalidSignature: the signature does not verify, or the key does
	// not fit the algorithm.
	CodeInvalidSignature = "InvalidSignature"
)
