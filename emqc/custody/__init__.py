"""Chain of custody: signing keys, the append-only ledger, signed reports, offline verification.

- :mod:`~emqc.custody._keys`: Ed25519 key pairs, the study's public key registry,
  revocation.
- :mod:`~emqc.custody._ledger`: the hash-chained, signed event ledger (SQLite).
- :mod:`~emqc.custody._study`: a study folder and the events pipeline steps record.
- :mod:`~emqc.custody._attest`: in-toto statements in signed DSSE envelopes.
- :mod:`~emqc.custody._export`: writing a signed report folder.
- :mod:`~emqc.custody._verify`: verifying one offline.
"""

from ._attest import MEANINGS
from ._canonical import canonical_bytes, sha256_hex, utc_now
from ._export import ExportedReport, export_report
from ._keys import ROLES, KeyRegistry, PublicKey, Signer, load_signer, new_key
from ._ledger import Event, Ledger, export_events, verify_events
from ._study import Study, signer_from
from ._verify import ReportVerification, verify_report

__all__ = [
    "MEANINGS",
    "ROLES",
    "Event",
    "ExportedReport",
    "KeyRegistry",
    "Ledger",
    "PublicKey",
    "ReportVerification",
    "Signer",
    "Study",
    "canonical_bytes",
    "export_events",
    "export_report",
    "load_signer",
    "new_key",
    "sha256_hex",
    "signer_from",
    "utc_now",
    "verify_events",
    "verify_report",
]
