"""Atomic training checkpoints: model, optimiser, scaler, schedule position, PPMD teachers and RNG states.

A checkpoint is one ``torch.save`` file written through a temporary file and ``os.replace``; a crash while writing
leaves the previous checkpoint intact. ``checkpoint-last.pt`` is what ``--resume`` reads.
"""

from __future__ import annotations

import io
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_manifests import atomic_write_bytes

log = logging.getLogger(__name__)
LAST = "checkpoint-last.pt"
FORMAT = "vehiclemae-checkpoint-v1"


def checkpoint_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "checkpoints"


def rng_states() -> dict[str, Any]:
    """Global RNG states (python, numpy, torch CPU and CUDA) so that a resumed run draws what the straight one would."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
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


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (on the CPU), with an error that says what is wrong.

    ``path`` may be a run folder (``output_dir``): its last checkpoint is read.
    """
    path = resolve_checkpoint(path)
    # weights_only=False: the payload holds RNG states (numpy arrays, tuples); only load checkpoints you trust.
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a vehiclemae training checkpoint (expected format {FORMAT})")
    return payload


def find_last(output_dir: str | os.PathLike) -> Path | None:
    path = checkpoint_dir(output_dir) / LAST
    return path if path.is_file() else None
