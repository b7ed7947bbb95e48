"""Experiment trackers through accelerate (``log_with: tensorboard | wandb | mlflow``, comma-separated for several).

Offline-safe by default: TensorBoard writes event files under the run folder; wandb runs in offline mode (its files
under ``<run>/wandb``; ``wandb sync`` uploads them later) unless ``WANDB_MODE`` says otherwise; MLflow logs to a local
file store ``<run>/mlruns`` unless ``MLFLOW_TRACKING_URI`` names a server. Scalars, images (reconstructions during
pre-training, retrieval examples during fine-tuning) and the resolved config go to every tracker. Only the main
process creates trackers. Logging draws no random numbers and touches no model, so it cannot change a run's numbers.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

TRACKERS = ("tensorboard", "wandb", "mlflow")
INSTALL = {
    "wandb": "pip install -e '.[trackers]' (or pip install wandb)",
    "mlflow": "pip install mlflow (not in the trackers extra: no MLflow release installs beside this project's pins "
    "pyarrow 26, cryptography 50, cachetools 7 and protobuf 7; use it in an environment with older pins)",
}


def parse_log_with(value: str | None) -> list[str]:
    """``"tensorboard,wandb"`` -> ``["tensorboard", "wandb"]``; ``"none"``/empty -> ``[]``. Unknown or missing
    trackers are one error naming the fix."""
    names = [n.strip().lower() for n in (value or "").split(",") if n.strip() and n.strip().lower() != "none"]
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(f"log_with: unknown tracker(s) {unknown}; valid: {', '.join(TRACKERS)} or none")
    for name in names:
        if name != "tensorboard" and importlib.util.find_spec(name) is None:
            raise ValueError(f"log_with={name} needs the {name} package: {INSTALL[name]}")
    return list(dict.fromkeys(names))


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Nested config -> ``{"optim.lr": 1e-4, ...}`` with only the scalar types every tracker accepts."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_config(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = "none" if value is None else str(value)
    return out


def _make(name: str, out: Path, project: str, run_name: str) -> Any:
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    if name == "tensorboard":
        return TensorBoardTracker("tensorboard", out)  # event files in <run>/tensorboard
    if name == "wandb":
        mode = os.environ.get("WANDB_MODE", "offline")
        return WandBTracker(project, mode=mode, dir=str(out), name=run_name)
    os.environ.setdefault("MLFLOW_TRACKING_URI", (out / "mlruns").resolve().as_uri())
    return MLflowTracker(experiment_name=project, run_name=run_name)


class RunTrackers:
    """The accelerate trackers of one run: ``log`` scalars, ``log_image`` pictures, ``finish`` at the end."""

    def __init__(self, names: list[str], out: Path, *, project: str, run_name: str, config: Mapping[str, Any]):
        self.trackers: list[tuple[str, Any]] = []
        out.mkdir(parents=True, exist_ok=True)
        values = flat_config(config)
        for name in names:
            tracker = _make(name, out, project, run_name)
            tracker.start()
            tracker.store_init_configuration(values)
            self.trackers.append((name, tracker))
        if names:
            log.info("logging to %s (%s)", ", ".join(names), out)

    def log(self, values: Mapping[str, Any], step: int) -> None:
        scalars = {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if scalars:
            for _, tracker in self.trackers:
                tracker.log(scalars, step=step)

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """``image``: ``(H, W, 3) uint8``."""
        for name, tracker in self.trackers:
            if name == "tensorboard":
                tracker.writer.add_image(tag, image, global_step=step, dataformats="HWC")
                tracker.writer.flush()
            elif name == "wandb":
                tracker.log_images({tag: [image]}, step=step)
            else:
                import mlflow

                mlflow.log_image(image, f"{tag}/step_{step:08d}.png")

    def finish(self) -> None:
        for _, tracker in self.trackers:
            tracker.finish()
        self.trackers = []
