"""The ``review`` stage adapter: automatic consistency checks, then automatic decisions and/or batches for annotators.

1. With ``review.checks.enabled``: score every kept image (identity and view consistency, :mod:`.checks`).
2. Auto mode: decide the ``auto_policy`` images automatically (accept, or reject with a check's reason code).
   Manual mode: export the ``policy`` images to annotators; with ``decide_rest``, decide every other image
   automatically (the paper profile: a person sees the uncertain band plus a random audit).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_manifests.queries import accepted_image_ids

from .batch_files import write_batch_files
from .policy import Bands, check_band
from .queue import auto_review, export_batches
from .status import review_status

log = logging.getLogger(__name__)


@dataclass
class ChecksConfig:
    """``review.checks``: the automatic consistency checks before review (docs/review-guide.md#automatic-checks)."""

    enabled: bool = False
    encoder: str = "colour_histogram"  # colour_histogram (toy) | clip (a local CLIP vision tower)
    encoder_path: str | None = None  # clip: a local model folder (absolute, or relative to the data root)
    view_check: bool = True  # run the view segmenter (segment.checkpoint) and compare with the prompted view
    segmenter_checkpoint: str | None = None  # default: segment.checkpoint
    identity_band: list[float] = field(default_factory=lambda: [0.4, 0.6])  # below: reject; inside: a person
    view_band: list[float] = field(default_factory=lambda: [0.3, 0.5])
    batch_size: int = 16
    device: str = "cpu"
    overwrite: bool = False  # re-score images already scored by the same encoder and segmenter

    def __post_init__(self) -> None:
        check_band(self.identity_band, "review.checks.identity_band")
        check_band(self.view_band, "review.checks.view_band")


@dataclass
class ReviewConfig:
    """The ``review:`` config section (every value is explained in ``docs/review-guide.md``/``docs/filter.md``)."""

    mode: str = "auto"  # auto: decide by auto_policy without a person; manual: export batches for annotators
    policy: str = "all"  # manual mode: which kept images go to annotators
    auto_policy: str = "all"  # auto mode: which kept images are decided automatically
    batch_size: int = 100
    out_dir: str = "review/batches"  # relative to the data root, or absolute
    seed: int = 0
    uncertain_low: float = 0.25  # the "uncertain" band of detector confidence: [low, high)
    uncertain_high: float = 0.6
    audit_rate: float = 0.0  # uncertain policy: share of the images outside every band a person also sees
    decide_rest: bool = False  # manual mode: decide automatically every image the policy does not send to a person
    checks: ChecksConfig = field(default_factory=ChecksConfig)

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "manual"):
            raise ValueError(f"review.mode must be 'auto' or 'manual', not {self.mode!r}")
        if not 0.0 <= self.uncertain_low < self.uncertain_high <= 1.0:
            raise ValueError("review needs 0 <= uncertain_low < uncertain_high <= 1")
        if not 0.0 <= self.audit_rate <= 1.0:
            raise ValueError(f"review.audit_rate must be in [0, 1], got {self.audit_rate}")

    def bands(self) -> Bands:
        """The triage bands; the identity and view bands only when the checks are enabled."""
        on = self.checks.enabled
        return Bands(
            conf=(self.uncertain_low, self.uncertain_high),
            identity=check_band(self.checks.identity_band, "review.checks.identity_band") if on else None,
            view=check_band(self.checks.view_band, "review.checks.view_band")
            if on and self.checks.view_check
            else None,
        )


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
    bands: Bands | None = None,
    audit_rate: float = 0.0,
    decide_rest: bool = False,
) -> dict[str, int]:
    """Auto mode: decide by ``auto_policy``. Manual mode: export new batches by ``policy`` (and rewrite missing files
    of batches still pending); with ``decide_rest``, decide the images left out automatically. Returns counts incl.
    ``awaiting`` (images without a decision) and ``accepted``."""
    bands = bands or Bands(conf=(uncertain_low, uncertain_high))
    common = dict(seed=seed, identities=identities, bands=bands)
    counts: dict[str, int] = {}
    if mode == "auto":
        counts["auto_batches"] = len(auto_review(root, auto_policy, **common))  # type: ignore[arg-type]
    else:
        new = export_batches(root, out_dir, policy, batch_size, audit_rate=audit_rate, **common)  # type: ignore[arg-type]
        counts["exported_batches"] = len(new)
        if decide_rest:
            counts["auto_batches"] = len(auto_review(root, "all", **common))  # type: ignore[arg-type]
        for b in review_status(root):
            if b.pending and not (Path(out_dir) / f"batch_{b.batch_id}.csv").is_file():
                write_batch_files(root, b.batch_id, out_dir)
    statuses = review_status(root)
    counts["awaiting"] = sum(b.pending + b.unsure for b in statuses)
    counts["accepted"] = len(accepted_image_ids(root))
    counts["processed"] = sum(b.total for b in statuses)
    return counts


def _resolve(root: Path, path: str | None) -> Path | None:
    if not path:
        return None
    return Path(path) if Path(path).is_absolute() else root / path


def run_consistency_checks(
    config: dict[str, Any], cfg: ChecksConfig, root: Path, identities: Sequence[str] | None
) -> dict[str, int]:
    """Build the encoder (and the segmenter from ``segment.checkpoint`` unless ``checks.segmenter_checkpoint``) and
    score the kept images. A missing segmenter checkpoint is an error that says how to make one."""
    from .checks import run_checks
    from .encoders import build_encoder

    encoder = build_encoder(cfg.encoder, _resolve(root, cfg.encoder_path), cfg.device, cfg.batch_size)
    segmenter = segmenter_ref = None
    if cfg.view_check:
        from pipeline.config import section
        from pipeline.segment.config import SegmentConfig
        from pipeline.segment.model import load_segmenter

        checkpoint = _resolve(root, cfg.segmenter_checkpoint or section(config, "segment", SegmentConfig).checkpoint)
        segmenter, sha = load_segmenter(checkpoint, cfg.device)  # type: ignore[arg-type]
        segmenter_ref = f"sam:{sha[:16]}"
    return run_checks(
        root, encoder, segmenter, segmenter_ref, identities=identities, batch_size=cfg.batch_size,
        overwrite=cfg.overwrite,
    )  # fmt: skip


def run_stage(config: dict[str, Any], root: Path, identities: list[str] | None) -> Any:
    """``diffveri run review``: the config adapter of the checks and :func:`run_review`."""
    from pipeline.config import section
    from pipeline.stages import StageResult

    cfg = section(config, "review", ReviewConfig)
    root = Path(root)
    out_dir = Path(cfg.out_dir) if Path(cfg.out_dir).is_absolute() else root / cfg.out_dir
    checked: dict[str, int] = {}
    if cfg.checks.enabled:
        checked = run_consistency_checks(config, cfg.checks, root, identities)
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
        bands=cfg.bands(),
        audit_rate=cfg.audit_rate,
        decide_rest=cfg.decide_rest,
    )
    if checked:
        counts["checked"] = checked["scored"]
    if cfg.mode == "manual":
        msg = f"{counts['awaiting']} image(s) await review; batches in {out_dir} (then `diffveri review import`)"
    else:
        msg = f"decided automatically by policy {cfg.auto_policy}"
    return StageResult("review", counts, msg)
