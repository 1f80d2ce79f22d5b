"""Keyed pseudonyms for patient, study, view and ECG identifiers.

Raw identifiers (MRNs, accession numbers, DICOM UIDs) never leave the manifests: every
store, ledger, table and log carries ``pseudonymise(raw, key)`` instead, an HMAC-SHA256
truncated to 16 hex digits. The same key gives the same pseudonym across runs, so joins
between stages still work; without the key the mapping cannot be reversed or rebuilt.
"""

from __future__ import annotations

import hmac
import os

KEY_ENV = "ECHO2ECG_PSEUDONYM_KEY"
DEMO_KEY = "echo2ecg-demo-key"  # only for the synthetic demo cohort; real cohorts set their own


MIN_KEY_BYTES = 32  # 256 bits: an HMAC key no search can find


def resolve_key(configured: str | None, demo: bool = False) -> bytes:
    """The pseudonym key: the environment variable wins over the config value.

    Raises ValueError when neither is set, and, unless ``demo`` (the synthetic cohort), when
    the key is the public demo key or shorter than :data:`MIN_KEY_BYTES`: MRNs and
    accession numbers are short, so a guessable key lets anyone rebuild the mapping by
    hashing every candidate (a 7-digit MRN space takes minutes on one core).
    """
    from_env = os.environ.get(KEY_ENV)
    key = from_env or configured
    where = KEY_ENV if from_env else "privacy.pseudonym_key"
    if not key:
        raise ValueError(
            f"no pseudonym key: set privacy.pseudonym_key in the config or the {KEY_ENV} "
            "environment variable"
        )
    encoded = key.encode("utf-8")
    if not demo and key == DEMO_KEY:
        raise ValueError(
            f"{where}: the public demo key is only for the demo cohort "
            "(demo.enabled: true); set a secret key of at least "
            f"{MIN_KEY_BYTES} bytes for real data, e.g. from "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    if not demo and len(encoded) < MIN_KEY_BYTES:
        raise ValueError(
            f"{where}: the pseudonym key is {len(encoded)} bytes; real data "
            f"needs at least {MIN_KEY_BYTES} (e.g. `python -c 'import secrets; "
            "print(secrets.token_hex(32))'`)"
        )
    return encoded


def pseudonymise(raw: str, key: bytes) -> str:
    """16 hex digits that stand for ``raw`` under ``key`` (HMAC-SHA256, truncated)."""
    # surrogateescape: a file name in an old encoding hashes to its bytes instead of failing
    return hmac.digest(key, str(raw).encode("utf-8", "surrogateescape"), "sha256").hex()[:16]


def pseudonymise_all(raws, key: bytes) -> list[str]:
    """:func:`pseudonymise` over a sequence, hashing each distinct value once (patient and
    study ids repeat on every view of a large manifest)."""
    cache: dict[str, str] = {}
    return [cache[r] if r in cache else cache.setdefault(r, pseudonymise(r, key)) for r in raws]
