// Package receipt owns CCF COSE receipts (the CCF profile of COSE Receipts)
// and SCITT transparent statements: the service's signature over a Merkle
// root, the receipt built from it with an inclusion proof in unprotected
// header 396, their verification against service keys chosen by kid, and
// statements carrying receipts in unprotected header 394.
//
// Everything here is a pure function of its inputs; keys come in as values
// and the clock as a parameter.
package receipt
