package didx509

import "errors"

// CodeInvalidIssuer is the code of every error this package returns: the
// issuer did:x509 cannot be resolved against the chain. The wrapped cause
// (one of the Err values below) says which check failed.
const CodeInvalidIssuer = "InvalidIssuer"

var (
	// ErrSyntax: the string is not a well-formed version 0 did:x509.
	ErrSyntax = errors.New("malformed did:x509")
	// ErrChain: the certificate chain does not validate.
	ErrChain = errors.New("certificate chain does not validate")
	// ErrFingerprint: no CA certificate of the chain has the DID's fingerprint.
	ErrFingerprint = errors.New("CA fingerprint does not match the chain")
	// ErrPredicate: a predicate does not match the leaf certificate.
	ErrPredicate = errors.New("predicate does not match the leaf certificate")
)
