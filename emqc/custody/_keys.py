"""Ed25519 signing keys and the public key registry of a study.

Every person who acts on a study (operator, judge, auditor) has an Ed25519 key pair
[1]_. The private key lives in a PEM file (PKCS #8, optionally encrypted with a
passphrase) readable only by its owner, like an SSH key; the public key is entered
in the study's **key registry** (``keys.json``), self-signed so that a registry
entry cannot be altered without the private key.

A key is named by its *key id*: the SHA-256 of its 32 raw public-key bytes (hex).
A key can be **revoked** from a time on, with a reason, by itself or by an auditor's
key; signatures it makes at or after that time fail verification, earlier ones stay
valid. The registry is a JSON document::

    {"format": "emqc.key-registry/1",
     "keys": [{"record": {...}, "signature": "<hex>"}, ...],
     "revocations": [{"record": {...}, "signature": "<hex>"}, ...]}

where each ``signature`` is over the record's canonical bytes
(:func:`emqc.custody._canonical.canonical_bytes`).

References
----------
.. [1] S. Josefsson, I. Liusvaara (2017), Edwards-Curve Digital Signature Algorithm
   (EdDSA), RFC 8032.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import CustodyError, KeyFileError, TamperError
from ._canonical import canonical_bytes, parse_utc, sha256_hex, utc_now

__all__ = ["ROLES", "KeyRegistry", "PublicKey", "Revocation", "Signer", "new_key", "load_signer"]

#: The roles a key can hold.
ROLES = ("operator", "judge", "auditor")
REGISTRY_FORMAT = "emqc.key-registry/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class PublicKey:
    """A registered public key: who holds it, in which role, since when."""

    name: str
    role: str
    keyid: str
    public_hex: str
    created: str
    record: dict[str, Any]
    signature: str

    def verifies(self, data: bytes, signature_hex: str) -> bool:
        """Whether ``signature_hex`` is this key's Ed25519 signature of ``data``."""
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_hex))
            key.verify(bytes.fromhex(signature_hex), data)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    @property
    def short(self) -> str:
        """``name (role, key abcd1234…)`` for messages."""
        return f"{self.name} ({self.role}, key {self.keyid[:12]})"


@dataclass(frozen=True)
class Revocation:
    """A key's revocation: from when, why, and by whom (a key id)."""

    keyid: str
    revoked_from: str
    reason: str
    by: str
    time: str
    record: dict[str, Any]
    signature: str


class Signer:
    """A private key, with the identity the registry gives it; signs exact bytes."""

    def __init__(self, private: Ed25519PrivateKey, public: PublicKey) -> None:
        self._private = private
        self.public = public

    name = property(lambda self: self.public.name)
    role = property(lambda self: self.public.role)
    keyid = property(lambda self: self.public.keyid)

    def sign(self, data: bytes) -> str:
        """Ed25519 signature of ``data``, hex."""
        return self._private.sign(data).hex()

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The cryptography key object (for DSSE signing with securesystemslib)."""
        return self._private

    def __repr__(self) -> str:
        return f"Signer({self.public.short})"


def _raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def is_self_revocation(action: str, params: Any, keyid: str) -> bool:
    """Whether an event is ``keyid``'s record of its own revocation (signed after it starts)."""
    return action == "key.revoke" and isinstance(params, dict) and params.get("keyid") == keyid


def keyid_of(raw_public: bytes) -> str:
    """Key id: SHA-256 of the 32 raw public-key bytes."""
    return sha256_hex(raw_public)


class KeyRegistry:
    """The public keys of a study (``keys.json``); see the module docstring.

    Parameters
    ----------
    path : Path
        The registry file. It need not exist yet (an empty registry).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.keys: dict[str, PublicKey] = {}
        self.revocations: dict[str, Revocation] = {}
        self.problems: list[str] = []
        if self.path.exists():
            self._load(self.path.read_bytes())

    # -- reading ---------------------------------------------------------------------
    def _load(self, data: bytes) -> None:
        where = str(self.path)
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TamperError(
                f"{where}: the key registry is not valid JSON ({exc}); it was altered or "
                "truncated. Restore it from a copy (a report folder holds one)."
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != REGISTRY_FORMAT:
            raise TamperError(
                f"{where}: not an emqc key registry (format {REGISTRY_FORMAT} expected)"
            )
        for i, item in enumerate(doc.get("keys", [])):
            try:
                rec, sig = item["record"], str(item["signature"])
                key = PublicKey(
                    str(rec["name"]),
                    str(rec["role"]),
                    str(rec["keyid"]),
                    str(rec["public_key"]),
                    str(rec["created"]),
                    rec,
                    sig,
                )
            except (KeyError, TypeError):
                self.problems.append(f"{where}: key entry {i} is malformed")
                continue
            self._check_key(key, i)
            if key.keyid in self.keys:
                self.problems.append(f"{where}: key {key.keyid[:12]} is registered twice")
            self.keys[key.keyid] = key
        for i, item in enumerate(doc.get("revocations", [])):
            try:
                rec, sig = item["record"], str(item["signature"])
                rev = Revocation(
                    str(rec["keyid"]),
                    str(rec["from"]),
                    str(rec["reason"]),
                    str(rec["by"]),
                    str(rec["time"]),
                    rec,
                    sig,
                )
            except (KeyError, TypeError):
                self.problems.append(f"{where}: revocation entry {i} is malformed")
                continue
            self._check_revocation(rev, i)
            self.revocations.setdefault(rev.keyid, rev)

    def _check_key(self, key: PublicKey, i: int) -> None:
        where = f"{self.path}: key entry {i} ({key.name})"
        try:
            raw = bytes.fromhex(key.public_hex)
        except ValueError:
            self.problems.append(f"{where}: public key is not hex")
            return
        if key.record.get("type") != "emqc.key/1" or len(raw) != 32:
            self.problems.append(f"{where}: not an Ed25519 key record")
        elif keyid_of(raw) != key.keyid:
            self.problems.append(f"{where}: key id does not match the public key (altered)")
        elif key.role not in ROLES:
            self.problems.append(f"{where}: unknown role {key.role!r}")
        elif not key.verifies(canonical_bytes(key.record), key.signature):
            self.problems.append(f"{where}: self-signature does not verify (entry altered)")

    def _check_revocation(self, rev: Revocation, i: int) -> None:
        where = f"{self.path}: revocation entry {i} (key {rev.keyid[:12]})"
        by = self.keys.get(rev.by)
        if rev.keyid not in self.keys:
            self.problems.append(f"{where}: revokes a key that is not registered")
        elif by is None:
            self.problems.append(f"{where}: signed by unregistered key {rev.by[:12]}")
        elif by.keyid != rev.keyid and by.role != "auditor":
            self.problems.append(f"{where}: only the key itself or an auditor may revoke it")
        elif not by.verifies(canonical_bytes(rev.record), rev.signature):
            self.problems.append(f"{where}: signature does not verify (entry altered)")

    def by_name(self, name: str) -> PublicKey:
        """The key registered as ``name`` (the most recent if several)."""
        found = [k for k in self.keys.values() if k.name == name]
        if not found:
            known = ", ".join(sorted({k.name for k in self.keys.values()})) or "none"
            raise CustodyError(
                f"{self.path}: no key named {name!r} (registered: {known}); "
                "create one with `emqc keys new NAME`"
            )
        return max(found, key=lambda k: k.created)

    def check_signature(
        self, keyid: str, data: bytes, signature: str, at: str, *, revoking_itself: bool = False
    ) -> PublicKey:
        """Verify a signature made at time ``at``; return the key, or raise :class:`TamperError`.

        Fails for an unknown key, a signature that does not verify, and a key revoked
        at or before ``at`` (except, with ``revoking_itself``, the record of the key's
        own revocation, which it signs after the time it revokes itself from).
        """
        key = self.keys.get(keyid)
        if key is None:
            raise TamperError(f"signed by an unknown key {keyid[:12]} (not in {self.path})")
        if not key.verifies(data, signature):
            raise TamperError(f"the signature of {key.short} does not match the signed bytes")
        rev = self.revocations.get(keyid)
        if rev is not None and not revoking_itself and parse_utc(at) >= parse_utc(rev.revoked_from):
            raise TamperError(
                f"{key.short} was revoked from {rev.revoked_from} ({rev.reason}); "
                f"its signature of {at} is not valid"
            )
        return key

    def refuse_revoked(self, keyid: str) -> None:
        """Raise :class:`CustodyError` if ``keyid`` is revoked now: it may no longer sign."""
        rev = self.revocations.get(keyid)
        if rev is not None and parse_utc(utc_now()) >= parse_utc(rev.revoked_from):
            raise CustodyError(
                f"key {keyid[:12]} was revoked from {rev.revoked_from} ({rev.reason}) and may no "
                "longer sign; create a new key with `emqc keys new`"
            )

    def to_document(self) -> dict[str, Any]:
        """The registry as its JSON document."""
        return {
            "format": REGISTRY_FORMAT,
            "keys": [{"record": k.record, "signature": k.signature} for k in self.keys.values()],
            "revocations": [
                {"record": r.record, "signature": r.signature} for r in self.revocations.values()
            ],
        }

    # -- changing --------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the registry, and reload it, while it is changed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.keys, self.revocations, self.problems = {}, {}, []
                if self.path.exists():
                    self._load(self.path.read_bytes())
                yield
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(self.to_document(), indent=1, ensure_ascii=False) + "\n")
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def register(self, private: Ed25519PrivateKey, name: str, role: str) -> PublicKey:
        """Enter ``private``'s public key as ``name`` in ``role`` (self-signed)."""
        raw = _raw_public(private)
        record = {
            "type": "emqc.key/1",
            "name": name,
            "role": role,
            "keyid": keyid_of(raw),
            "public_key": raw.hex(),
            "algorithm": "ed25519",
            "created": utc_now(),
        }
        key = PublicKey(
            name,
            role,
            record["keyid"],
            raw.hex(),
            record["created"],
            record,
            private.sign(canonical_bytes(record)).hex(),
        )
        with self._locked():
            self.keys[key.keyid] = key
        return key

    def revoke(
        self, keyid: str, by: Signer, *, reason: str, revoked_from: str | None = None
    ) -> Revocation:
        """Revoke ``keyid`` from ``revoked_from`` (default: now), signed by ``by``.

        Raises
        ------
        CustodyError
            If the key is unknown, already revoked, the reason empty, or ``by`` is
            neither the key itself nor an auditor.
        """
        if not reason.strip():
            raise CustodyError("a revocation needs a reason (e.g. 'laptop lost')")
        start = revoked_from or utc_now()
        parse_utc(start)
        with self._locked():
            if keyid not in self.keys:
                raise CustodyError(f"{self.path}: no key {keyid[:12]} to revoke")
            if keyid in self.revocations:
                raise CustodyError(f"{self.path}: key {keyid[:12]} is already revoked")
            if by.keyid != keyid and by.role != "auditor":
                raise CustodyError(
                    f"{by.public.short} may not revoke another person's key; "
                    "an auditor's key or the key itself must sign the revocation"
                )
            record = {
                "type": "emqc.key-revocation/1",
                "keyid": keyid,
                "from": start,
                "reason": reason,
                "by": by.keyid,
                "time": utc_now(),
            }
            rev = Revocation(
                keyid,
                start,
                reason,
                by.keyid,
                record["time"],
                record,
                by.sign(canonical_bytes(record)),
            )
            self.revocations[keyid] = rev
        return rev


def new_key(
    name: str,
    role: str,
    *,
    registry: KeyRegistry,
    key_path: Path | str,
    passphrase: str | None = None,
) -> Signer:
    """Create an Ed25519 key pair, write the private key, register the public key.

    Parameters
    ----------
    name : str
        The holder's name as it will appear in the ledger and on reports (letters,
        digits, ``.``, ``_``, ``-``; up to 64 characters).
    role : {"operator", "judge", "auditor"}
    registry : KeyRegistry
    key_path : Path
        Where the private key is written (PEM, PKCS #8; mode 0600). Must not exist.
    passphrase : str, optional
        Encrypt the private key with it (best available PKCS #8 encryption).

    Raises
    ------
    CustodyError
        If the name or role is invalid, or the name is already registered.
    KeyFileError
        If ``key_path`` exists.
    """
    if not _NAME.match(name):
        raise CustodyError(
            f"key name {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(up to 64 characters), e.g. 'a.smith'"
        )
    if role not in ROLES:
        raise CustodyError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if any(k.name == name for k in registry.keys.values()):
        raise CustodyError(
            f"{registry.path}: a key named {name!r} is already registered; "
            "choose another name, or revoke the old key first and use a new name"
        )
    path = Path(key_path)
    private = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(
            f"{path}: a key file already exists there; choose another path "
            "(a private key is never overwritten)"
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = registry.register(private, name, role)
    return Signer(private, public)


def load_signer(
    key_path: Path | str, registry: KeyRegistry, passphrase: str | None = None
) -> Signer:
    """Load a private key and find its identity in ``registry``.

    Raises
    ------
    KeyFileError
        If the file is missing, readable by group or others, not a private key, needs
        a passphrase that was not given, or the passphrase is wrong.
    CustodyError
        If the key is not in the registry.
    """
    path = Path(key_path)
    if not path.is_file():
        raise KeyFileError(f"{path}: no such key file; create one with `emqc keys new NAME`")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: private key is readable by others (mode {mode:o}); run `chmod 600 {path}`"
        )
    data = path.read_bytes()
    try:
        private = serialization.load_pem_private_key(
            data, password=passphrase.encode("utf-8") if passphrase else None
        )
    except TypeError:
        raise KeyFileError(
            f"{path}: the key is encrypted; give its passphrase "
            "(prompted, or the EMQC_KEY_PASSPHRASE environment variable)"
        ) from None
    except ValueError:
        raise KeyFileError(
            f"{path}: not a readable private key, or the passphrase is wrong"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key (emqc signs with Ed25519 only)")
    keyid = keyid_of(_raw_public(private))
    public = registry.keys.get(keyid)
    if public is None:
        raise CustodyError(
            f"{path}: this key is not in the registry {registry.path}; "
            "register it there (`emqc keys new` does) or use the study's registry"
        )
    return Signer(private, public)
