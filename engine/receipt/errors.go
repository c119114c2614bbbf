package receipt

// Error codes returned by this package, all with engine.KindInvalid. Signature
// failures carry cose.CodeInvalidSignature ("InvalidSignature").
const (
	// CodeInvalidReceipt: not a well-formed CCF COSE receipt.
	CodeInvalidReceipt = "InvalidReceipt"
	// CodeClaimsDigestMismatch: the receipt's leaf commits to other claims.
	CodeClaimsDigestMismatch = "ClaimsDigestMismatch"
	// CodeUnknownServiceKey: no trusted service key has the receipt's kid.
	CodeUnknownServiceKey = "UnknownServiceKey"
	// CodeInvalidServiceKey: a service key or certificate cannot be used.
	CodeInvalidServiceKey = "InvalidServiceKey"
	// CodeInvalidServiceParameters: a service-parameters file is malformed.
	CodeInvalidServiceParameters = "InvalidServiceParameters"
)
