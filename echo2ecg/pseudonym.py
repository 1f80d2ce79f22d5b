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


def resolve_key(configured: str | None) -> bytes:
    """The pseudonym key: the environment variable wins over the config value.

    Raises ValueError when neither is set, so that a real cohort is never hashed with a
    key anyone could guess.
    """
    key = os.environ.get(KEY_ENV) or configured
    if not key:
        raise ValueError(
            f"no pseudonym key: set privacy.pseudonym_key in the config or the {KEY_ENV} "
            "environment variable"
        )
    return key.encode("utf-8")


def pseudonymise(raw: str, key: bytes) -> str:
    """16 hex digits that stand for ``raw`` under ``key`` (HMAC-SHA256, truncated)."""
    return hmac.digest(key, str(raw).encode("utf-8"), "sha256").hex()[:16]


def pseudonymise_all(raws, key: bytes) -> list[str]:
    """:func:`pseudonymise` over a sequence, hashing each distinct value once (patient and
    study ids repeat on every view of a large manifest)."""
    cache: dict[str, str] = {}
    return [cache[r] if r in cache else cache.setdefault(r, pseudonymise(r, key)) for r in raws]
