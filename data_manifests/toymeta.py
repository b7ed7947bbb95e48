"""The toy world's ``toyworld_meta.json`` beside its VeRi-776 layout: written by ``pipeline`` (the toy world's
export), read by ``vehiclemae`` (:mod:`vehiclemae.reid.toymeta`, which documents and checks the format)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

META_FILE = "toyworld_meta.json"
META_FORMAT = "toyworld-veri-meta-v1"


def toy_meta_text(
    family_size: int, images: Mapping[str, Mapping[str, Any]], identities: Mapping[int | str, Mapping[str, Any]]
) -> str:
    """The file's text: ``images`` by VeRi file name, ``identities`` by vid (stored as a decimal string)."""
    payload = {
        "format": META_FORMAT,
        "family_size": int(family_size),
        "images": images,
        "identities": {str(int(k)): v for k, v in identities.items()},
    }
    return json.dumps(payload, indent=1, sort_keys=True) + "\n"
