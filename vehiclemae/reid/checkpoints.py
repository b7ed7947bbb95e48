"""Re-ID fine-tuning checkpoints: writing them, resuming a run from one, and loading a model for evaluation.

Files and resume rules are the shared convention of :mod:`data_manifests.checkpoints` (``docs/architecture.md``,
"Checkpoints and resume"): ``OUT/checkpoints/checkpoint-last.pt`` (model, optimiser, RNG states, the best validation
result so far) and ``OUT/checkpoints/checkpoint-best.pt`` (the model chosen on validation identities).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from data_manifests import checkpoints as ckpt

from . import finetune as ft

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "vehiclemae-reid-v1"
# Names written before the shared convention, moved into OUT/checkpoints/ on the first resume (for one release).
LEGACY_NAMES = {"last.pth": ckpt.LAST, "best.pth": ckpt.BEST}
# Config keys that do not change what is trained (the run length `optim.epochs` may grow: a run can be extended).
RESUME_IGNORES = (
    "output_dir",
    "device",
    "threads",
    "log_with",
    "optim.epochs",
    "data.num_workers",
    "data.eval_batch_size",
    "eval.log_examples",
)


def save_reid_checkpoint(path: Path, model: ft.ReIDModel, *, rng: bool = False, **extra: Any) -> Path:
    """Atomic ``torch.save`` of the model weights, its backbone spec and ``extra`` (epoch, metrics, config...);
    ``rng``: also the global RNG states (the last checkpoint, which a run resumes from)."""
    payload = {"model": model.state_dict(), "spec": model.spec, "num_classes": model.num_classes, **extra}
    return ckpt.save_checkpoint(path, payload, format=CHECKPOINT_FORMAT, rng=rng)


def load_reid_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Re-ID checkpoint's payload, read weights-only (a crafted file runs nothing), with a clear error otherwise."""
    return ckpt.load_checkpoint(
        path,
        format=CHECKPOINT_FORMAT,
        what="Re-ID checkpoint of `vehiclemae finetune` (checkpoints/checkpoint-best.pt or checkpoint-last.pt)",
        fix="load only checkpoints written by vehiclemae",
    )


def resolve_run(path: str | Path) -> Path:
    """A checkpoint file as given, or a fine-tuning run folder's chosen model (``checkpoints/checkpoint-best.pt``)."""
    path = Path(path)
    return ckpt.best_path(path) if path.is_dir() and ckpt.best_path(path).is_file() else path


def load_model(path: str | Path, img_size: int | None = None) -> tuple[torch.nn.Module, int]:
    """A model for evaluation and its image size, from a fine-tuning checkpoint (or a run folder: its
    ``checkpoints/checkpoint-best.pt``), a ``vehiclemae export-reid`` folder or a ``vehiclemae export`` file.

    An exported encoder (``.safetensors``) is evaluated as is (its class-token feature, no BNNeck): the
    "pre-trained only" row of a comparison.
    """
    from vehiclemae.reid.export import is_reid_export, load_reid_export

    path = Path(path)
    if is_reid_export(path):  # a `vehiclemae export-reid` folder
        return load_reid_export(path, img_size)
    path = resolve_run(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist (fine-tuning writes OUTPUT/checkpoints/checkpoint-best.pt and "
            "checkpoint-last.pt)"
        )
    if path.suffix == ".safetensors":
        from vehiclemae.models import load_encoder, read_metadata

        size = img_size or read_metadata(path)["img_size"]
        return load_encoder(path, img_size=size).eval(), size
    try:
        payload = load_reid_checkpoint(path)
    except ValueError as exc:
        if "expected format" in str(exc):
            raise ValueError(f"{exc} nor an exported .safetensors encoder") from None
        raise
    spec = payload["spec"]
    size = img_size or int(spec["img_size"])
    backbone, _ = ft.build_backbone("scratch", spec["model_name"], size)
    model = ft.ReIDModel(backbone, int(payload["num_classes"]), spec)
    model.load_state_dict(payload["model"])
    return model.eval(), size


def find_resume_point(out: Path, resume: bool) -> Path | None:
    """``OUT/checkpoints/checkpoint-last.pt`` to continue from (``None``: a new run); ``resume=False`` removes the
    earlier run's checkpoints. ``last.pth`` / ``best.pth`` of earlier versions are moved into ``checkpoints/``."""
    if not resume:
        ckpt.start_over(out, legacy=LEGACY_NAMES)
        return None
    return ckpt.find_last(out, legacy=LEGACY_NAMES)


def restore(
    last_path: Path | None, model: ft.ReIDModel, optimizer: torch.optim.Optimizer, val_pids: list, cfg: Any
) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    """``(best, last validation result, first epoch to run)``: a new run's (``last_path`` is ``None``), or those
    stored in ``last_path`` after loading its model, optimiser and RNG states. A checkpoint trained with other
    validation identities or another training config is refused."""
    if last_path is None:
        return {"epoch": None, "val": None}, None, 0
    from dataclasses import asdict

    state = load_reid_checkpoint(last_path)
    if "val_pids" not in state:
        raise ValueError(
            f"{last_path} predates validation-based selection (it chose the best model on the test set); "
            f"{ckpt.NO_RESUME_HINT}"
        )
    if state["val_pids"] != val_pids:
        raise ValueError(
            f"{last_path} was trained with other validation identities than data.val_identities="
            f"{cfg.data.val_identities!r} and seed={cfg.seed} give now; resume with the run's own config.yaml, or "
            f"{ckpt.NO_RESUME_HINT}"
        )
    ckpt.check_config(last_path, state.get("config"), asdict(cfg), RESUME_IGNORES)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if "rng" in state:
        ckpt.set_rng_states(state["rng"])
    else:  # written before the shared convention: the torch RNG only
        torch.set_rng_state(state["torch_rng"])
    logger.info("resuming %s after epoch %d", last_path.parent, int(state["epoch"]))
    return state["best"], state["metrics"], int(state["epoch"]) + 1
