"""Pre-training checkpoints: model, optimiser, scaler, schedule position, PPMD teachers and RNG states.

The writer, the reader and the run-folder convention are :mod:`data_manifests.checkpoints` (``docs/architecture.md``,
"Checkpoints and resume"); this module adds the pre-training format tag and reads checkpoints written before RNG
states were stored as plain values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_manifests import checkpoints as ck
from data_manifests.checkpoints import LAST, checkpoint_dir, find_last, rng_states, set_rng_states
from data_manifests.safe_load import load_torch_file

FORMAT = "vehiclemae-checkpoint-v1"

__all__ = [
    "FORMAT",
    "LAST",
    "checkpoint_dir",
    "find_last",
    "load_checkpoint",
    "load_checkpoint_file",
    "resolve_checkpoint",
    "rng_states",
    "save_checkpoint",
    "set_rng_states",
]


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format tag and RNG states) atomically to ``path``."""
    return ck.save_checkpoint(path, payload, format=FORMAT)


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
    import numpy as np

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

    ``path`` may be a run folder (``output_dir``): its last checkpoint is read. Loading is weights-only; checkpoints
    of earlier versions, whose numpy RNG state is an array, still load.
    """
    path = resolve_checkpoint(path)
    return ck.load_checkpoint(
        path,
        format=FORMAT,
        what="vehiclemae training checkpoint",
        allow=_legacy_numpy_rng_globals(),
        fix="load only checkpoints written by vehiclemae",
    )
