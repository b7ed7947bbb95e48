"""The ``review`` stage adapter: automatic acceptance (toy demo) or export of batches for annotators."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .queue import accepted_image_ids, auto_review, export_batches, review_status, write_batch_files

log = logging.getLogger(__name__)


@dataclass
class ReviewConfig:
    """The ``review:`` config section (every value is explained in ``docs/review-guide.md``/``docs/filter.md``)."""

    mode: str = "auto"  # auto: accept by auto_policy without a human; manual: export batches for annotators
    policy: str = "all"  # manual mode: which kept images go to annotators
    auto_policy: str = "all"  # auto mode: which kept images are accepted automatically
    batch_size: int = 100
    out_dir: str = "review/batches"  # relative to the data root, or absolute
    seed: int = 0
    uncertain_low: float = 0.25  # the "uncertain" band of detector confidence: [low, high)
    uncertain_high: float = 0.6

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "manual"):
            raise ValueError(f"review.mode must be 'auto' or 'manual', not {self.mode!r}")
        if not 0.0 <= self.uncertain_low < self.uncertain_high <= 1.0:
            raise ValueError("review needs 0 <= uncertain_low < uncertain_high <= 1")


def run_review(
    *,
    root: Path,
    mode: str,
    policy: str,
    auto_policy: str,
    batch_size: int,
    out_dir: Path,
    seed: int,
    uncertain_low: float,
    uncertain_high: float,
    identities: Sequence[str] | None = None,
) -> dict[str, int]:
    """Auto mode: accept by ``auto_policy``. Manual mode: export new batches by ``policy`` (and rewrite missing files
    of batches still pending). Returns counts incl. ``awaiting`` (images without a decision) and ``accepted``."""
    band = dict(seed=seed, identities=identities, uncertain_low=uncertain_low, uncertain_high=uncertain_high)
    counts: dict[str, int] = {}
    if mode == "auto":
        counts["auto_batches"] = len(auto_review(root, auto_policy, **band))  # type: ignore[arg-type]
    else:
        new = export_batches(root, out_dir, policy, batch_size, **band)  # type: ignore[arg-type]
        counts["exported_batches"] = len(new)
        for b in review_status(root):
            if b.pending and not (Path(out_dir) / f"batch_{b.batch_id}.csv").is_file():
                write_batch_files(root, b.batch_id, out_dir)
    statuses = review_status(root)
    counts["awaiting"] = sum(b.pending + b.unsure for b in statuses)
    counts["accepted"] = len(accepted_image_ids(root))
    counts["processed"] = sum(b.total for b in statuses)
    return counts


def run_stage(config: dict[str, Any], root: Path, identities: list[str] | None) -> Any:
    """``diffveri run review``: the config adapter of :func:`run_review`."""
    from pipeline.config import section
    from pipeline.stages import StageResult

    cfg = section(config, "review", ReviewConfig)
    root = Path(root)
    out_dir = Path(cfg.out_dir) if Path(cfg.out_dir).is_absolute() else root / cfg.out_dir
    counts = run_review(
        root=root,
        mode=cfg.mode,
        policy=cfg.policy,
        auto_policy=cfg.auto_policy,
        batch_size=cfg.batch_size,
        out_dir=out_dir,
        seed=cfg.seed,
        uncertain_low=cfg.uncertain_low,
        uncertain_high=cfg.uncertain_high,
        identities=identities,
    )
    if cfg.mode == "manual":
        msg = f"{counts['awaiting']} image(s) await review; batches in {out_dir} (then `diffveri review import`)"
    else:
        msg = f"auto-accepted by policy {cfg.auto_policy}"
    return StageResult("review", counts, msg)
