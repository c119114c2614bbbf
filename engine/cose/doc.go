// Package cose owns COSE_Sign1 as gavel reads and writes it: the strict
// decoding of a tagged COSE_Sign1, header maps, the signature algorithms
// (ES256/384/512, PS256/384/512, EdDSA), and SCITT/CCF signed statements —
// parsing, did:x509 issuer resolution against the x5chain, signature
// verification, signing, and the claims digest that CCF receipts commit to.
//
// Only tagged messages (CBOR tag 18) are accepted: CCF's claims digest is the
// SHA-256 of the tagged encoding, so an untagged message would have no single
// digest. The byte strings of a message must use shortest-form lengths, so
// that re-encoding a decoded message reproduces the signed bytes exactly.
package cose
