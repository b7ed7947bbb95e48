"""Helpers shared by the generation stages: base-model resolution and hashing, seeds, image I/O, rare tokens."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from data_manifests import atomic_write_bytes
from data_manifests.images import ImageTooLargeError, open_image

logger = logging.getLogger(__name__)

# Process-global state in the libraries: diffusers/transformers load weights under global init contexts (meta
# device), and accelerate keeps one AcceleratorState / GradientState per process. Threads of one process (the flow's
# thread runner) therefore load models, and train, one at a time under this lock; parallel shards run in separate
# processes or machines. Re-entrant, so a holder may load more models.
MODEL_LOCK = threading.RLock()


def import_model_libraries() -> None:
    """Resolve the lazily imported model classes once, under :data:`MODEL_LOCK`.

    diffusers and transformers expose their classes through lazy modules that are not thread-safe: two threads
    doing ``from diffusers import StableDiffusionPipeline`` for the first time can see a half-initialised module
    (``ImportError: cannot import name``). Stage entry points call this before anything else.
    """
    with MODEL_LOCK:
        import accelerate  # noqa: F401
        import peft  # noqa: F401
        from diffusers import (  # noqa: F401
            AutoencoderKL,
            DDIMScheduler,
            DDPMScheduler,
            StableDiffusionPipeline,
            UNet2DConditionModel,
        )
        from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401


# Files whose bytes define a diffusers model folder (weights and configs; not READMEs or caches).
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


@dataclass
class ModelsConfig:
    """The ``models:`` config section.

    ``base`` is a diffusers ``StableDiffusionPipeline`` folder, absolute or relative to the data root.
    ``build_tiny_if_missing`` builds the tiny random pipeline there when it does not exist (toy profile only).
    """

    base: str = "models/tiny-sd"
    build_tiny_if_missing: bool = False
    tiny_seed: int = 0
    tiny: dict[str, Any] = field(default_factory=dict)  # overrides of tiny_models.TinySDSpec fields


def resolve_path(root: Path, path: str | os.PathLike) -> Path:
    """``path`` if absolute, else ``root / path``."""
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p


def relative_to_root(root: Path, path: Path) -> str:
    """``path`` relative to the data root when it is inside it (manifests store relative paths), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def resolve_base_model(root: Path, models: ModelsConfig) -> Path:
    """The base pipeline folder, built first if the config allows it; a clear error otherwise."""
    path = resolve_path(root, models.base)
    if not (path / "model_index.json").is_file():
        if models.build_tiny_if_missing:
            from .tiny_models import TinySDSpec, save_tiny_pipeline

            spec = TinySDSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in models.tiny.items()})
            return save_tiny_pipeline(path, spec=spec, seed=models.tiny_seed)
        what = "does not exist" if not path.exists() else "has no model_index.json (not a diffusers pipeline folder)"
        raise FileNotFoundError(
            f"base model {path} (models.base in the config) {what}; point models.base at a local Stable Diffusion "
            f"folder, or build the toy one with `diffveri toy sd --root {root}`"
        )
    return path


@lru_cache(maxsize=8)
def _folder_sha256(path: str, mtimes: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for rel, _, _ in mtimes:
        digest.update(rel.encode() + b"\0")
        with open(Path(path) / rel, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def model_sha256(path: Path) -> str:
    """sha256 over the weight and config files of a model folder (relative names + bytes, in sorted order).

    Cached per process by (path, file sizes, modification times), so a stage hashes a 4 GB model once.
    """
    files = sorted(
        p for p in Path(path).rglob("*") if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES and ".tmp-" not in p.name
    )
    stamp = tuple((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _folder_sha256(str(path), stamp)


def set_torch_threads(threads: int | None) -> None:
    """Set torch's intra-op threads for this process (``None`` leaves torch's default).

    On a small shared CPU, several workers each using every core oversubscribe it; a training step measured ten
    times slower with 2 threads per process than with 1 on the project's loaded 2-core machine.
    """
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def slug(text: str) -> str:
    """A file-system safe name (letters, digits, ``-``, ``_``, ``.``)."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return out or "_"


# Consonant-vowel syllables that rarely start English words; DreamBooth binds the identity to such a token.
_RARE_ONSETS = "zqxjvkw"
_RARE_VOWELS = "aeiouy"


def rare_token(identity_id: str, taken: set[str] | None = None, syllables: int = 2) -> str:
    """A short, rare, deterministic token for an identity (e.g. ``"zoqa"``), unique within ``taken``."""
    taken = taken or set()
    for attempt in range(10_000):
        h = hashlib.sha256(f"{identity_id}\x1f{attempt}".encode()).digest()
        token = "".join(
            _RARE_ONSETS[h[2 * i] % len(_RARE_ONSETS)] + _RARE_VOWELS[h[2 * i + 1] % len(_RARE_VOWELS)]
            for i in range(syllables)
        )
        if token not in taken:
            return token
    raise RuntimeError(f"no free rare token for identity {identity_id!r}")


def check_image(path: Path) -> str | None:
    """``None`` if ``path`` is a readable image, else the reason code (``missing_file`` / ``unreadable_image`` /
    ``image_too_large``: over the pixel limit of :mod:`data_manifests.images`, refused before decoding)."""
    if not path.is_file():
        return "missing_file"
    try:
        with open_image(path) as image:
            image.verify()  # header and structure; a truncated/corrupt file raises here
        with open_image(path) as image:
            image.load()  # verify() does not decode pixels; load() does
    except ImageTooLargeError:
        return "image_too_large"
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files
        return "unreadable_image"
    return None


def load_image_square(path: Path, size: int) -> np.ndarray:
    """Load an RGB image, centre-crop to a square and resize to ``size``; returns uint8 ``(size, size, 3)``.

    No horizontal flips anywhere in generation: a mirrored car shows its left side as its right one.
    """
    from PIL import Image

    with open_image(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(image, dtype=np.uint8).copy()


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``(H, W, 3)`` image (deterministic for equal pixels)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def write_png(path: Path, image: np.ndarray) -> str:
    """Write ``image`` atomically as PNG; returns the sha256 of the written bytes."""
    data = encode_png(image)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def dumps(obj: Any) -> str:
    """Compact, key-sorted JSON (stable across runs, for manifest columns)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
