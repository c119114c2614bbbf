// Package attest owns node attestation: it verifies the evidence a joining
// node sends — an AMD SEV-SNP report with its VCEK, ASK and ARK, or virtual
// evidence from a service started in virtual mode — and extracts what the
// join decides on (host data, measurement, TCB), checking the governed values
// it is given (trusted measurements, minimum TCB, debug) and that the report
// binds the node's public key.
//
// It is pure: no I/O, no clock (the caller passes the entry's time), no
// network (the endorsements come with the request; AMD's roots are the ones
// go-sev-guest embeds, plus any extra trusted root the caller passes, such as
// a development chain from package devsnp). Verification runs in CCF's order
// (src/pal/attestation.cpp, src/node/quote.cpp) and each stage fails with its
// own reason: an *engine.Error with code InvalidQuote (CCF's, status 401)
// wrapping one of the Err values of this package.
package attest
