// Package didx509 owns did:x509 identifiers (DIF / Microsoft did:x509 method,
// version 0): parsing them, building them for a certificate chain, and
// resolving one against an X.509 chain to the leaf public key.
//
// Resolution is a pure function of the DID, the chain and a point in time:
// the chain is validated (signatures, constraints and validity at that time),
// the CA fingerprint must name a certificate of the chain other than the leaf,
// and every predicate must match the leaf certificate.
package didx509
