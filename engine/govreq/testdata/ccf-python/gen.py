"""Writes governance requests the way CCF's Python client does.

Mirrors python/src/ccf/cose.py in microsoft/CCF (create_cose_sign1_prepare
and create_cose_sign1_finish): protected header {1: alg, 4: kid, ...} with
kid = cert fingerprint (SHA-256 of the DER) as hex *bytes*, the ccf.gov.*
headers, keys sorted by their encoded CBOR (cwt.utils.
sort_keys_for_deterministic_encoding), Sig_structure
["Signature1", phdr, b"", payload], ECDSA signature as r||s, and
CBORTag(18, [phdr, {}, payload, sig]). cbor2 is not installed here, so
enc() below is a minimal encoder for the few types used, with cbor2's
(shortest-form) output. Signing uses pyca/cryptography, as CCF's client.

Run from this folder: python3 gen.py   (needs the `cryptography` package)
"""

import hashlib
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
    raise ValueError(n)


def enc(v):
    if isinstance(v, bool) or v is None:
        raise TypeError(v)
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode("utf-8")
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(enc(k) + enc(x) for k, x in v.items())
    raise TypeError(v)


def sorted_header(d):
    # cwt.utils.sort_keys_for_deterministic_encoding
    return {k: v for k, v in sorted(d.items(), key=lambda kv: enc(kv[0]))}


def sign_request(member, msg_type, created_at, payload, proposal_id=None):
    cert_pem = open(f"../openssl/{member}_cert.pem", "rb").read()
    key = serialization.load_pem_private_key(open(f"../openssl/{member}_privk.pem", "rb").read(), None)
    cert = x509.load_pem_x509_certificate(cert_pem)
    curve = cert.public_key().curve
    alg, h, size = {"secp256r1": (-7, hashes.SHA256(), 32), "secp384r1": (-35, hashes.SHA384(), 48)}[curve.name]
    kid = cert.fingerprint(hashes.SHA256()).hex().encode("utf-8")

    extra = {"ccf.gov.msg.type": msg_type}
    if proposal_id:
        extra["ccf.gov.msg.proposal_id"] = proposal_id
    extra["ccf.gov.msg.created_at"] = created_at
    phdr_map = {1: alg, 4: kid}
    phdr_map.update(extra)
    phdr = enc(sorted_header(phdr_map))

    tbs = enc(["Signature1", phdr, b"", payload])
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(h)))
    sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return bytes([0xD2]) + enc([phdr, {}, payload, sig])


CREATED_AT = 1700000000
proposal = sign_request(
    "member0", "proposal", CREATED_AT,
    b'{"actions":[{"name":"set_constitution","args":{"constitution":"export function apply() {}"}}]}')
proposal_id = hashlib.sha256(proposal).hexdigest()
ballot = sign_request(
    "member1", "ballot", CREATED_AT + 1,
    b'{"ballot":"export function vote (proposal, proposerId) { return true }"}', proposal_id)
withdrawal = sign_request("member0", "withdrawal", CREATED_AT + 2, b"", proposal_id)

for name, raw in (("proposal", proposal), ("ballot", ballot), ("withdrawal", withdrawal)):
    open(f"{name}.cose", "wb").write(raw)
    print(name, len(raw), hashlib.sha256(raw).hexdigest())
