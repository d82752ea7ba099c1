"""A report's attestation: an in-toto Statement v1 in a DSSE envelope, signed by its signers.

The statement [1]_ names every object the report vouches for as a *subject* (name +
SHA-256): each file of the report folder, each volume (the root digest of its chunk
manifest), and the custody ledger's head. Its predicate (type
:data:`PREDICATE_TYPE`) holds the study, the time, the ledger head and one entry per
signer: printed name, role, key id, the signature's meaning (authored, reviewed,
approved) and time, as 21 CFR Part 11 §11.50 asks. The statement's exact bytes are
the payload of a DSSE envelope [2]_, signed (Ed25519, through securesystemslib) by
every signer over DSSE's pre-authentication encoding, so a signature is bound to
this payload and its type and cannot be moved to another record.

The envelope file is written in one canonical form; a verifier rejects any other
byte sequence, so even a change that leaves the JSON's meaning intact is detected.

References
----------
.. [1] in-toto Attestation Framework, Statement layer v1,
   https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md.
.. [2] DSSE: Dead Simple Signing Envelope, protocol v1,
   https://github.com/secure-systems-lab/dsse/blob/master/protocol.md.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, Signature, SSlibKey

from ..errors import TamperError
from ._canonical import canonical_bytes
from ._keys import KeyRegistry, Signer

__all__ = [
    "MEANINGS",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "SignedStatement",
    "envelope_bytes",
    "make_statement",
    "open_envelope",
    "sign_statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://emqc.readthedocs.io/attestations/preservation-report/v1"
#: What a signature means (21 CFR Part 11 §11.50(a)(3)).
MEANINGS = ("authored", "reviewed", "approved")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SIG = re.compile(r"^[0-9a-f]{128}$")


def make_statement(
    subjects: Sequence[Mapping[str, str]], predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """An in-toto Statement v1 with ``subjects`` (``{"name", "sha256"}``) and ``predicate``."""
    subject = []
    for s in subjects:
        if not _HEX64.match(s["sha256"]):
            raise ValueError(f"subject {s['name']!r}: not a SHA-256 hex digest")
        subject.append({"name": s["name"], "digest": {"sha256": s["sha256"]}})
    names = [s["name"] for s in subject]
    if len(set(names)) != len(names):
        raise ValueError("subject names must be unique")
    return {
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(predicate),
    }


def sign_statement(statement: Mapping[str, Any], signers: Sequence[Signer]) -> Envelope:
    """DSSE envelope of the statement's canonical bytes, signed by every signer."""
    envelope = Envelope(canonical_bytes(statement), PAYLOAD_TYPE, {})
    for s in signers:
        key = SSlibKey.from_crypto(s.private_key.public_key(), keyid=s.keyid)
        envelope.sign(CryptoSigner(s.private_key, key))
    return envelope


def envelope_bytes(envelope: Envelope) -> bytes:
    """The one canonical byte form of an envelope file (sorted keys, one trailing newline)."""
    doc = envelope.to_dict()
    doc["signatures"] = sorted(doc["signatures"], key=lambda s: s["keyid"])
    return canonical_bytes(doc) + b"\n"


@dataclass(frozen=True)
class SignedStatement:
    """An envelope whose every signature verified, and the statement it carries."""

    statement: dict[str, Any]
    signers: tuple[dict[str, Any], ...]  # the predicate's signer entries, each verified


def open_envelope(data: bytes, registry: KeyRegistry, *, where: str) -> SignedStatement:
    """Parse and verify an envelope file against ``registry``.

    Every signature must verify with a registered, unrevoked (at its signing time)
    key, and the signatures must be exactly those of the predicate's signers.

    Raises
    ------
    TamperError
        Naming what failed: the file's form, the payload, a signature, a signer.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
        envelope = Envelope.from_dict(doc)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise TamperError(
            f"{where}: not a readable DSSE envelope ({exc}); the file was altered"
        ) from None
    if envelope_bytes(envelope) != data:
        raise TamperError(
            f"{where}: the envelope is not in its signed canonical form "
            "(bytes were changed or the file was re-formatted)"
        )
    if base64.b64encode(envelope.payload).decode() != doc.get("payload"):
        raise TamperError(f"{where}: the payload's base64 text was altered")
    if envelope.payload_type != PAYLOAD_TYPE:
        raise TamperError(f"{where}: payload type {envelope.payload_type!r} is not {PAYLOAD_TYPE}")
    try:
        statement = json.loads(envelope.payload.decode("utf-8"))
        predicate = statement["predicate"]
        listed = {str(s["keyid"]): dict(s) for s in predicate["signers"]}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise TamperError(f"{where}: the signed statement is not readable ({exc})") from None
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        raise TamperError(f"{where}: not an emqc preservation-report statement")
    if canonical_bytes(statement) != envelope.payload:
        raise TamperError(f"{where}: the statement is not in canonical form (altered)")
    if not envelope.signatures:
        raise TamperError(f"{where}: the envelope has no signature")
    if set(envelope.signatures) != set(listed):
        raise TamperError(
            f"{where}: the signatures do not match the statement's signers "
            f"(signed by {sorted(k[:12] for k in envelope.signatures)}, "
            f"listed {sorted(k[:12] for k in listed)})"
        )
    pae = envelope.pae()
    verified = []
    for keyid, sig in sorted(envelope.signatures.items()):
        entry = listed[keyid]
        _check_signature_form(sig, where)
        try:
            key = registry.check_signature(keyid, pae, sig.signature, str(entry.get("time")))
        except (TamperError, ValueError) as exc:
            raise TamperError(
                f"{where}: signature of {entry.get('name', keyid[:12])!r}: {exc}"
            ) from None
        if (entry.get("name"), entry.get("role")) != (key.name, key.role):
            raise TamperError(
                f"{where}: signer entry {entry.get('name')!r} does not match the "
                f"registered key {key.short}"
            )
        if entry.get("meaning") not in MEANINGS:
            raise TamperError(
                f"{where}: signer {key.name}: meaning {entry.get('meaning')!r} "
                f"is not one of {', '.join(MEANINGS)}"
            )
        verified.append(entry)
    return SignedStatement(statement, tuple(verified))


def _check_signature_form(sig: Signature, where: str) -> None:
    if not _SIG.match(sig.signature) or not _HEX64.match(sig.keyid):
        raise TamperError(
            f"{where}: signature {sig.keyid[:12]!r} is not in canonical hex form (altered)"
        )
