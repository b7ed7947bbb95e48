"""The fine-tuning run's trackers: epoch scalars and retrieval pictures (nothing here changes training)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .config import FinetuneConfig


class FinetuneTracking:
    """The fine-tuning run's trackers (``cfg.log_with``): epoch rows as scalars (nested keys joined by ``/``, step =
    epoch) and retrieval pictures (``eval.log_examples`` queries and their top 5) drawn from the distances the
    evaluation computed anyway: no extra forward pass, nothing random, training unchanged."""

    def __init__(self, cfg: FinetuneConfig, out: Path) -> None:
        from vehiclemae.engine.tracking import RunTrackers, parse_log_with

        self.cfg = cfg
        names = parse_log_with(cfg.log_with)
        self.trackers = RunTrackers(names, out, project="vehiclemae-finetune", run_name=out.name, config=asdict(cfg))

    def log(self, row: dict[str, Any], step: int) -> None:
        self.trackers.log(_numbers(row), step)

    def retrieval(self, split: dict[str, Any], evaluated: dict[str, Any], step: int, tag: str) -> None:
        """The picture from an evaluation's distances (``evaluated``: the ``keep`` dict of :func:`evaluate_model`;
        empty for VehicleID, which has no fixed query set)."""
        n = self.cfg.eval.log_examples
        if not n or not self.trackers.trackers or "dist" not in evaluated:
            return
        from .plots import retrieval_examples

        rows = np.unique(np.linspace(0, len(split["query"]) - 1, n).astype(int))
        q_pids, g_pids = evaluated["q_pids"][rows], evaluated["g_pids"]
        dist = np.array(evaluated["dist"][rows], dtype=np.float64)
        dist[(q_pids[:, None] == g_pids[None]) & (evaluated["q_cams"][rows][:, None] == evaluated["g_cams"][None])] = (
            np.inf  # the protocol's junk: same identity, same camera
        )
        same = q_pids[:, None] == g_pids[None]
        paths = [split["query"][int(i)].path for i in rows]
        image = retrieval_examples(paths, [g.path for g in split["gallery"]], dist, same, k=5)
        self.trackers.log_image(f"{tag}/retrieval", image, step)

    def finish(self) -> None:
        self.trackers.finish()


def _numbers(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested row, keys joined by ``/`` (``{"val": {"mAP": 1}}`` -> ``{"val/mAP": 1.0}``)."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(_numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool) and key != "epoch":
            out[f"{prefix}{key}"] = float(value)
    return out
