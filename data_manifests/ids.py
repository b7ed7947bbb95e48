"""Deterministic identifiers and file hashes."""

from __future__ import annotations

import hashlib
import os


def image_id(identity_id: str, view: str, seed: int, model_ref: str) -> str:
    """The id of a generated image: a hash of what made it, so re-runs never create duplicate rows.

    Returns 16 hex characters (64 bits; collisions are negligible below billions of images).
    """
    text = "\x1f".join((identity_id, view, str(int(seed)), model_ref))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
