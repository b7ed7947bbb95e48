"""Training checkpoints and resume: one convention, one atomic writer and one safe reader for every trainer.

The convention (documented once, in ``docs/architecture.md``, "Checkpoints and resume"):

- the run folder is the command's output folder ``OUT``; the training state is ``OUT/checkpoints/checkpoint-last.pt``,
  written atomically after every epoch (or every ``checkpoint_every`` steps); a trainer that selects a model on
  validation also writes ``OUT/checkpoints/checkpoint-best.pt``;
- a run resumes automatically when ``checkpoint-last.pt`` exists; ``--no-resume`` starts over (the old checkpoints
  are removed first); ``--resume`` is a deprecated no-op;
- a checkpoint whose training config differs from the run's (keys that do not change training, such as logging,
  are ignored) is an error naming the keys.

A checkpoint is one ``torch.save`` dict holding tensors and plain Python values only, with a ``format`` tag naming
its trainer and the global RNG states as plain values (:func:`rng_states`); it is read with ``weights_only=True``
(:mod:`data_manifests.safe_load`), so a crafted file cannot run code. torch and numpy are imported when used.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .safe_load import load_torch_file
from .store import atomic_write_bytes

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LAST = "checkpoint-last.pt"
BEST = "checkpoint-best.pt"
NO_RESUME_HINT = "pass --no-resume to start over, or choose another output folder"


def checkpoint_dir(out: str | os.PathLike) -> Path:
    """``OUT/checkpoints``: where every trainer keeps its checkpoints."""
    return Path(out) / CHECKPOINTS


def run_name(checkpoint: str | os.PathLike) -> str:
    """The name of the run a checkpoint file belongs to (``OUT`` for ``OUT/checkpoints/checkpoint-best.pt``)."""
    path = Path(checkpoint)
    if path.is_dir():
        return path.name
    return path.parent.parent.name if path.parent.name == CHECKPOINTS else path.parent.name


def last_path(out: str | os.PathLike) -> Path:
    return checkpoint_dir(out) / LAST


def best_path(out: str | os.PathLike) -> Path:
    return checkpoint_dir(out) / BEST


# ------------------------------------------------------------------------------------------------------------ RNG
def rng_states() -> dict[str, Any]:
    """Global RNG states (python, numpy, torch CPU and CUDA) so that a resumed run draws what the straight one would.

    All plain values (ints, floats, lists, tensors): numpy's MT19937 key becomes a list, so that the checkpoint loads
    with ``weights_only=True`` and needs no numpy type on the allow-list.
    """
    import numpy as np
    import torch

    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {"key": numpy_state["state"]["key"].tolist(), "pos": int(numpy_state["state"]["pos"])}
    states: dict[str, Any] = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore :func:`rng_states` (or the ``np.random.get_state()`` tuple of checkpoints written before it)."""
    import numpy as np
    import torch

    random.setstate(states["python"])
    numpy_state = states["numpy"]
    if isinstance(numpy_state, dict):
        key = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
        numpy_state = {**numpy_state, "state": {**numpy_state["state"], "key": key}}
    np.random.set_state(numpy_state)
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ---------------------------------------------------------------------------------------------------- write / read
def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any], *, format: str, rng: bool = True) -> Path:
    """Write ``payload`` with its ``format`` tag (and, with ``rng``, the global RNG states) atomically to ``path``.

    A crash while writing leaves the previous file intact (``atomic_write_bytes``: temporary file, fsync, rename).
    """
    import torch

    buffer = io.BytesIO()
    torch.save({"format": format, **({"rng": rng_states()} if rng else {}), **payload}, buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_checkpoint(
    path: str | os.PathLike,
    *,
    format: str | Sequence[str] | None = None,
    what: str = "training checkpoint",
    allow: Sequence[Any] = (),
    fix: str = "load only checkpoints written by this project",
    map_location: str = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint weights-only (a crafted pickle is refused before anything in it runs).

    ``format``: the accepted tag(s); another tag (or none) is a ``ValueError`` saying what the file should be.
    Every failure is one ``ValueError`` naming the file.
    """
    payload = load_torch_file(path, allow=allow, fix=fix, map_location=map_location)
    formats = (format,) if isinstance(format, str) else tuple(format or ())
    if formats and (not isinstance(payload, dict) or payload.get("format") not in formats):
        raise ValueError(f"{path} is not a {what} (expected format {' or '.join(formats)}); {fix}")
    return payload


# ---------------------------------------------------------------------------------------------------------- resume
def find_last(out: str | os.PathLike, legacy: Mapping[str, str] | None = None) -> Path | None:
    """``OUT/checkpoints/checkpoint-last.pt`` if it exists, else ``None``.

    ``legacy``: file names of earlier versions (relative to ``OUT``) and the convention's names they become
    (``{"last.pth": LAST, "best.pth": BEST}``). When the last checkpoint exists only under its old name, those files
    are moved into ``OUT/checkpoints/`` with a warning (read for one release), so the run continues in the new layout.
    """
    path = last_path(out)
    if path.is_file() or not legacy:
        return path if path.is_file() else None
    old_last = [Path(out) / old for old, new in legacy.items() if new == LAST and (Path(out) / old).is_file()]
    if not old_last:
        return None
    for old, new in legacy.items():
        source = Path(out) / old
        if source.is_file() and not (checkpoint_dir(out) / new).is_file():
            checkpoint_dir(out).mkdir(parents=True, exist_ok=True)
            os.replace(source, checkpoint_dir(out) / new)
            message = f"{source}: an old checkpoint name, moved to {checkpoint_dir(out) / new} (read for one release)"
            warnings.warn(message, FutureWarning, stacklevel=2)
            log.warning(message)
    return path


def start_over(out: str | os.PathLike, legacy: Iterable[str] = ()) -> None:
    """``--no-resume``: remove the run's checkpoints (``OUT/checkpoints/checkpoint-*.pt`` and the ``legacy`` names
    relative to ``OUT``), so that nothing of the earlier run can be mistaken for this one's."""
    old = sorted(checkpoint_dir(out).glob("checkpoint-*.pt")) + [Path(out) / name for name in legacy]
    old = [p for p in old if p.is_file()]
    if old:
        log.warning("starting over (--no-resume): removing the earlier run's %s", ", ".join(str(p) for p in old))
    for path in old:
        path.unlink(missing_ok=True)  # (every process of a distributed run may get here)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}`` (lists and other values are leaves)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ between two nested configs, except ``ignore`` (a key or a section prefix).

    Only keys present in both count: a key added since the checkpoint was written has a default that keeps the old
    behaviour (and a removed key no longer means anything).
    """
    ignored = tuple(ignore)
    old, new = flatten(saved), flatten(current)

    def kept(key: str) -> bool:
        return not any(key == i or key.startswith(f"{i}.") for i in ignored)

    def same(a: Any, b: Any) -> bool:
        # Lists and tuples are the same value (YAML has no tuples); numbers compare by value.
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            return list(a) == list(b)
        return a == b

    keys = sorted(k for k in old.keys() & new.keys() if kept(k))
    return [k for k in keys if not same(old.get(k), new.get(k))]


def check_config(path: str | os.PathLike, saved: Mapping[str, Any] | None, current: Mapping[str, Any], ignore=()):
    """Refuse to resume from ``path`` when its training config differs from the run's, naming the keys.

    ``saved is None`` (a checkpoint that predates stored configs) is accepted with a warning.
    """
    if saved is None:
        log.warning("%s holds no training config; resuming without checking it against the run's", path)
        return
    differing = config_differences(saved, current, ignore)
    if differing:
        old, new = flatten(saved), flatten(current)
        detail = "; ".join(f"{k}: {old.get(k)!r} in the checkpoint, {new.get(k)!r} now" for k in differing[:8])
        more = f" (and {len(differing) - 8} more)" if len(differing) > 8 else ""
        raise ValueError(
            f"{path} was trained with another config ({detail}{more}); resume with the run's own config, or "
            f"{NO_RESUME_HINT}"
        )


# ---------------------------------------------------------------------------------------------------------- CLI
class _DeprecatedResume(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        warnings.warn(
            "--resume is deprecated and does nothing: a run resumes automatically from "
            f"{CHECKPOINTS}/{LAST} (use --no-resume to start over)",
            FutureWarning,
            stacklevel=2,
        )
        log.warning("--resume is deprecated and does nothing: runs resume automatically (--no-resume starts over)")


def add_resume_flags(parser: argparse.ArgumentParser, out: str = "the output folder", *, epochs: str = "") -> None:
    """``--no-resume`` (``args.no_resume``) and the deprecated no-op ``--resume``, the same on every training CLI;
    with ``epochs`` (what stopping early skips, for the help) also ``--stop-after-epoch E`` (``args.stop_after_epoch``)
    for trainers that count epochs."""
    if epochs:
        parser.add_argument(
            "--stop-after-epoch",
            type=int,
            default=None,
            metavar="E",
            help=f"return after E epochs are done and checkpointed ({epochs}); the same command again continues",
        )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help=f"start over: remove {out}'s checkpoints instead of resuming from {CHECKPOINTS}/{LAST}",
    )
    parser.add_argument(
        "--resume", nargs=0, action=_DeprecatedResume, help="deprecated, does nothing (runs resume automatically)"
    )
