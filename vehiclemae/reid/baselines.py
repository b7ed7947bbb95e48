"""Training-free reference points for a VeRi-776 layout: colour histograms, an attribute oracle, chance.

A learned encoder is only interesting if it beats what needs no learning:

* ``histogram``: joint RGB histogram (8 bins per channel, 512 bins) of the central 50 % (width and height) of each
  image as stored, counts normalised to sum 1 and square-rooted (the Hellinger embedding); L2 distance.
* ``oracle``: knows only the toy world's family attributes (``toyworld_meta.json``): distance 0 if the two images'
  identities are in the same family, 1 if not but they share class and colour, 2 otherwise; ties broken by a
  seeded jitter (< 1e-3) and metrics averaged over ``num_seeds`` jitter seeds. It is what a model that perfectly
  recognises family-level attributes, and nothing finer, would score.
* ``chance``: uniform random distances, averaged over ``num_seeds`` seeds.

Every baseline reports :func:`vehiclemae.reid.views.retrieval_metrics` on the test query/gallery split.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from data_manifests.seeds import rng

from .views import retrieval_metrics

logger = logging.getLogger(__name__)

BASELINES: tuple[str, ...] = ("histogram", "oracle", "chance")
HIST_BINS = 8
JITTER = 1e-3


def check_baselines(names: Sequence[str] | str) -> list[str]:
    """Validate baseline names (list or comma-separated); an unknown name lists the valid ones."""
    from vehiclemae.config import parse_names

    return parse_names(names, BASELINES, "baseline")


# ------------------------------------------------------------------------------------------------ histogram
def color_histogram(image: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """``(bins**3,)`` float64 square-rooted joint RGB histogram of the central 50 % of ``image (H, W, 3) uint8``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    h, w = image.shape[:2]
    top, left = h // 4, w // 4
    crop = image[top : top + max(1, h - 2 * top), left : left + max(1, w - 2 * left)]
    q = (crop.reshape(-1, 3).astype(np.int64) * bins) >> 8  # bin of each channel value in [0, bins)
    joint = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    counts = np.bincount(joint, minlength=bins**3).astype(np.float64)
    return np.sqrt(counts / counts.sum())


def histogram_features(paths: Sequence[str | os.PathLike], bins: int = HIST_BINS) -> np.ndarray:
    """``(N, bins**3)`` float32 :func:`color_histogram` of image files (converted to RGB)."""
    feats = np.empty((len(paths), bins**3), dtype=np.float32)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as handle:
                feats[i] = color_histogram(np.asarray(handle.convert("RGB")), bins)
        except OSError as exc:
            raise OSError(f"cannot read image {path}: {exc}") from exc
    return feats


def l2_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(Q, G)`` Euclidean distances between ``a (Q, D)`` and ``b (G, D)`` (float64 accumulation, clamped at 0)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


# --------------------------------------------------------------------------------------------------- oracle
def oracle_distance(q_pids: Sequence[int], g_pids: Sequence[int], meta: Any) -> np.ndarray:
    """``(Q, G)`` family-attribute distance: 0 same family, 1 same class and colour, 2 otherwise (no jitter)."""

    def codes(pids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        fam = [meta.identity(p).family for p in pids]
        look = [(meta.identity(p).class_name, meta.identity(p).color_name) for p in pids]
        return np.array(fam, dtype=object), np.array([f"{c}\x00{k}" for c, k in look], dtype=object)

    qf, ql = codes(q_pids)
    gf, gl = codes(g_pids)
    same_family = qf[:, None] == gf[None, :]
    same_look = ql[:, None] == gl[None, :]
    return np.where(same_family, 0.0, np.where(same_look, 1.0, 2.0))


# ------------------------------------------------------------------------------------------------------ run
def average_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each numeric metric over runs (``None`` stays ``None``; counts are taken from the first run)."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = float(np.mean([r[key] for r in runs]))
        else:
            out[key] = value
    out["num_seeds"] = len(runs)
    return out


def _seeded(
    base: np.ndarray, scale: float, metrics_of: Callable[[np.ndarray], dict[str, Any]], seed: int, num_seeds: int
) -> dict[str, Any]:
    """Metrics of ``base + scale * U[0, 1)`` averaged over the seeds ``(seed, 0..num_seeds-1)``."""
    noises = [rng(seed, "reid.baselines.noise", s).random(base.shape) for s in range(num_seeds)]
    runs = [metrics_of(base + scale * noise) for noise in noises]
    return average_metrics(runs)


def run_baselines(
    root: str | Path,
    baselines: Sequence[str] | str | None = None,
    *,
    seed: int = 0,
    num_seeds: int = 5,
) -> dict[str, dict[str, Any]]:
    """Training-free baselines on a VeRi-776 layout's test split: ``{baseline: metrics}``.

    Args:
        root: VeRi-776 layout root; view metrics and the ``oracle`` need ``ROOT/toyworld_meta.json``.
        baselines: names from :data:`BASELINES`; ``None``: all of them, without ``oracle`` when the layout has no
            meta file (an explicit ``oracle`` without it is an error).
        seed, num_seeds: the jitter / random-distance seeds ``(seed, 0..num_seeds-1)``.

    Returns:
        per baseline the dict of :func:`~vehiclemae.reid.views.retrieval_metrics` (percentages) plus
        ``"seconds"`` (and ``"num_seeds"`` for the seeded ones).
    """
    from vehiclemae.reid.data import load_veri776
    from vehiclemae.reid.toymeta import META_FILE, load_toy_meta

    split = load_veri776(root)
    meta = load_toy_meta(root)
    if baselines is None:
        names = [b for b in BASELINES if meta is not None or b != "oracle"]
        if meta is None:
            logger.info("%s has no %s: skipping the oracle baseline", root, META_FILE)
    else:
        names = check_baselines(baselines)
    if "oracle" in names and meta is None:
        raise FileNotFoundError(
            f"the oracle baseline needs {Path(root) / META_FILE} (written by `diffveri toy world`); this layout has "
            "none (real VeRi-776?): run the other baselines, e.g. --baselines histogram,chance"
        )
    q_pids = np.array([s.pid for s in split.query])
    g_pids = np.array([s.pid for s in split.gallery])
    q_cams = np.array([s.camid for s in split.query])
    g_cams = np.array([s.camid for s in split.gallery])
    q_views = meta.views_for(split.query) if meta else None
    g_views = meta.views_for(split.gallery) if meta else None

    def metrics_of(dist: np.ndarray) -> dict[str, Any]:
        return retrieval_metrics(dist, q_pids, g_pids, q_cams, g_cams, q_views, g_views)

    out: dict[str, dict[str, Any]] = {}
    for name in names:
        t0 = time.perf_counter()
        if name == "histogram":
            qf = histogram_features([s.path for s in split.query])
            gf = histogram_features([s.path for s in split.gallery])
            res = metrics_of(l2_distance(qf, gf))
        elif name == "oracle":
            res = _seeded(oracle_distance(q_pids, g_pids, meta), JITTER, metrics_of, seed, num_seeds)
        else:
            res = _seeded(np.zeros((len(q_pids), len(g_pids))), 1.0, metrics_of, seed, num_seeds)
        out[name] = {**res, "seconds": round(time.perf_counter() - t0, 3)}
    return out


__all__ = [
    "BASELINES",
    "average_metrics",
    "check_baselines",
    "color_histogram",
    "histogram_features",
    "l2_distance",
    "oracle_distance",
    "run_baselines",
]
