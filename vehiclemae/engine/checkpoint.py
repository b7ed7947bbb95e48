"""Atomic training checkpoints: model, optimiser, scaler, schedule position, PPMD teachers and RNG states.

A checkpoint is one ``torch.save`` file written through a temporary file and ``os.replace``; a crash while writing
leaves the previous checkpoint intact. ``checkpoint-last.pt`` is what ``--resume`` reads.

Checkpoints hold tensors and plain Python values only (the numpy RNG state is stored as lists), and every file is
read with ``torch.load(weights_only=True)`` (:func:`load_checkpoint_file`): a crafted pickle cannot run code here.
"""

from __future__ import annotations

import io
import logging
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_manifests import atomic_write_bytes
from data_manifests.safe_load import load_torch_file

log = logging.getLogger(__name__)
LAST = "checkpoint-last.pt"
FORMAT = "vehiclemae-checkpoint-v1"


def checkpoint_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "checkpoints"


def rng_states() -> dict[str, Any]:
    """Global RNG states (python, numpy, torch CPU and CUDA) so that a resumed run draws what the straight one would.

    All plain values (ints, floats, lists, tensors): numpy's MT19937 key becomes a list, so that the checkpoint loads
    with ``weights_only=True`` and needs no numpy type on the allow-list.
    """
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {"key": numpy_state["state"]["key"].tolist(), "pos": int(numpy_state["state"]["pos"])}
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore :func:`rng_states` (or the ``np.random.get_state()`` tuple of checkpoints written before it)."""
    random.setstate(states["python"])
    numpy_state = states["numpy"]
    if isinstance(numpy_state, dict):
        key = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
        numpy_state = {**numpy_state, "state": {**numpy_state["state"], "key": key}}
    np.random.set_state(numpy_state)
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format tag and RNG states) atomically to ``path``."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "rng": rng_states(), **payload}, buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder (its ``checkpoints/checkpoint-last.pt``)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (checkpoint_dir(path) / LAST, path / LAST):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{path} holds no {LAST} (nor checkpoints/{LAST}); has the run finished an epoch?")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def _legacy_numpy_rng_globals() -> list[Any]:
    """Exactly what the numpy RNG state of checkpoints written before plain RNG states needs: one ``uint32`` array.

    (``_reconstruct`` is named ``numpy.core.multiarray`` by numpy 1 and ``numpy._core.multiarray`` by numpy 2.) An array
    of any other dtype is still refused: its dtype class is not on the list.
    """
    reconstruct = np.zeros(1).__reduce__()[0]
    names = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct")
    return [*((reconstruct, name) for name in names), np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_checkpoint_file(
    path: str | os.PathLike, allow: Sequence[Any] = (), fix: str = "load only checkpoints written by vehiclemae"
) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with ``allow`` as the only extra globals.

    Tensors, containers and plain Python values load; a file naming any other class or function (a crafted pickle's
    ``__reduce__`` payload) is refused before anything in it is called. Every failure is one ``ValueError`` naming the
    file (the CLI prints it as one line): refused, or unreadable (empty, truncated, not a ``torch.save`` file).
    """
    return load_torch_file(path, allow=allow, fix=fix)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (on the CPU), with an error that says what is wrong.

    ``path`` may be a run folder (``output_dir``): its last checkpoint is read. Loading is weights-only
    (:func:`load_checkpoint_file`); checkpoints of earlier versions, whose numpy RNG state is an array, still load.
    """
    path = resolve_checkpoint(path)
    payload = load_checkpoint_file(path, allow=_legacy_numpy_rng_globals())
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a vehiclemae training checkpoint (expected format {FORMAT})")
    return payload


def find_last(output_dir: str | os.PathLike) -> Path | None:
    path = checkpoint_dir(output_dir) / LAST
    return path if path.is_file() else None
