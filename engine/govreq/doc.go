// Package govreq owns gavel's signed governance requests: the COSE_Sign1
// envelopes members send to propose, vote and withdraw, encoded exactly as
// CCF's clients encode them (protected headers alg, kid = member id,
// ccf.gov.msg.type, ccf.gov.msg.created_at, ccf.gov.msg.proposal_id).
//
// It parses (Parse), verifies (Request.Verify, VerifySign1), checks the
// replay window (CheckCreatedAt), signs (Sign) and makes or loads member
// keys (Keygen, LoadMember). Everything here is pure apart from Sign and
// Keygen, which draw randomness (Keygen also reads the clock); nothing does
// I/O. VerifySign1 is the general COSE_Sign1 check (tagged or not, as
// RFC 9052 allows); Parse adds CCF's rules for requests (tag 18 required).
package govreq
