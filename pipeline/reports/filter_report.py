"""The filter report: what the filter kept and why it rejected the rest, and where the detector's confidences fall
relative to the review band — the picture to look at when choosing ``review.uncertain_low/high``.

Left: one bar per outcome of the ``detections`` table (``kept``, then each reject reason, then failures). Right:
the histogram of detector confidences (kept and rejected stacked), the review band ``[uncertain_low,
uncertain_high)`` shaded with the number of kept images inside it (what the ``uncertain`` policy sends to a
person), and the filter's ``conf_min`` as a dashed line. When the automatic consistency checks ran, their scores
(``identity_score``, ``view_score``) get a histogram each, with their bands (``review.checks.identity_band``,
``view_band``). Written to ``ROOT/reports/filter.png`` by ``diffveri report filter --root ROOT --config PROFILE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

import data_manifests as dm
from data_manifests import Status

from .figures import BAND, FAILED, KEPT, REJECTED, new_figure, reports_dir, save_png

Band = tuple[float, float]
SCORES = (("conf", "detector confidence"), ("identity_score", "identity score"), ("view_score", "view score"))


@dataclass(frozen=True)
class ScorePanel:
    """One histogram: the score column, bin edges, counts of kept and rejected rows per bin, the band drawn and
    how many kept rows fall inside it."""

    column: str
    edges: list[float]
    kept: list[int]
    rejected: list[int]
    band: Band | None
    kept_in_band: int
    kept_below_band: int = 0  # check scores only: images the triage rejects (identity/view_inconsistent)


@dataclass(frozen=True)
class FilterReport:
    """What the report plotted: rows per outcome, the histograms, the filter threshold, and the file."""

    outcomes: dict[str, int]
    panels: list[ScorePanel]
    conf_min: float | None
    without_conf: int  # rows with no confidence (no vehicle found, unreadable image)
    path: Path
    bands: dict[str, Band | None] = field(default_factory=dict)


def report_bands(config: dict[str, Any]) -> dict[str, Any]:
    """The report's thresholds from a pipeline config: ``conf_band`` = review ``[uncertain_low, uncertain_high)``,
    ``conf_min`` = ``filter.conf_min``, ``identity_band`` / ``view_band`` = ``review.checks.*_band`` (only when
    the checks are enabled)."""
    from pipeline.review.policy import check_band

    review = config.get("review") or {}
    checks = review.get("checks") or {}
    conf_band = check_band([review.get("uncertain_low", 0.25), review.get("uncertain_high", 0.6)], "review band")
    out: dict[str, Any] = {"conf_band": conf_band, "conf_min": (config.get("filter") or {}).get("conf_min")}
    for name in ("identity_band", "view_band"):
        band = checks.get(name) if checks.get("enabled") else None
        out[name] = check_band(band, f"review.checks.{name}") if band is not None else None
    return out


def outcome_label(status: str, reason: str | None) -> str:
    """``kept`` for ok rows, the reason code for rejected ones, ``failed/<reason>`` for failures."""
    if status == Status.OK:
        return "kept"
    if status == Status.REJECTED:
        return str(reason or Status.REJECTED)
    return f"{status}/{reason}" if reason else str(status)


def _panel(column: str, scores: np.ndarray, kept: np.ndarray, band: Band | None, bins: int) -> ScorePanel:
    has = ~np.isnan(scores)
    # Scores are stored as float32: binning in float32 puts a stored 0.9 in the bin that starts at 0.9.
    edges = np.linspace(0.0, 1.0, bins + 1).astype(np.float32)
    clipped = np.clip(scores[has].astype(np.float32), 0.0, 1.0)
    h_kept, _ = np.histogram(clipped[kept[has]], edges)
    h_rej, _ = np.histogram(clipped[~kept[has]], edges)
    in_band = below = 0
    if band is not None:  # compared in float64, as the review triage compares (pipeline/review/policy.py)
        s = scores[has & kept]
        in_band = int(((s >= band[0]) & (s < band[1])).sum())
        below = int((s < band[0]).sum()) if column != "conf" else 0  # a low confidence passes the triage
    edges_out = [float(e) for e in edges]
    return ScorePanel(column, edges_out, h_kept.tolist(), h_rej.tolist(), band, in_band, below)


def _draw_outcomes(ax: Any, outcomes: dict[str, int]) -> None:
    labels = list(outcomes)
    colours = [KEPT if k == "kept" else (REJECTED if "/" not in k else FAILED) for k in labels]
    y = np.arange(len(labels))
    ax.barh(y, [outcomes[k] for k in labels], color=colours)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    total = sum(outcomes.values())
    for i, k in enumerate(labels):
        ax.text(outcomes[k], i, f" {outcomes[k]} ({100 * outcomes[k] / total:.0f} %)", va="center", fontsize=7)
    ax.set_xlim(0, max(outcomes.values()) * 1.35)
    ax.set_title(f"filter outcomes ({total} images)", fontsize=9)
    ax.set_xlabel("images", fontsize=8)


def _draw_panel(ax: Any, panel: ScorePanel, title: str, conf_min: float | None) -> None:
    edges = np.asarray(panel.edges)
    width = np.diff(edges)
    ax.bar(edges[:-1], panel.kept, width=width, align="edge", color=KEPT, label="kept")
    ax.bar(edges[:-1], panel.rejected, width=width, align="edge", bottom=panel.kept, color=REJECTED, label="rejected")
    if panel.band is not None:
        low, high = panel.band
        name = "review band" if panel.column == "conf" else "checks band"
        label = f"{name} [{low:g}, {high:g}): {panel.kept_in_band} kept"
        ax.axvspan(low, high, color=BAND, alpha=0.3, label=label, zorder=0)
        if panel.column != "conf":
            label = f"below: {panel.kept_below_band} kept, rejected by the check"
            ax.axvspan(0, low, color=REJECTED, alpha=0.08, label=label, zorder=0)
    if conf_min is not None and panel.column == "conf":
        ax.axvline(conf_min, color="black", linestyle="--", linewidth=1, label=f"filter.conf_min {conf_min:g}")
    ax.set_xlim(0, 1)
    tallest = max([k + r for k, r in zip(panel.kept, panel.rejected)] or [0])
    ax.set_ylim(0, 1.6 * tallest + 1)  # room for the legend above the bars
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(panel.column, fontsize=8)
    ax.set_ylabel("images", fontsize=8)
    ax.legend(fontsize=7, loc="upper left")


def filter_report(
    root: str | Path,
    out: str | Path | None = None,
    *,
    conf_band: Band | None = (0.25, 0.6),
    conf_min: float | None = None,
    identity_band: Band | None = None,
    view_band: Band | None = None,
    bins: int = 20,
) -> FilterReport:
    """Draw the filter report of ``root``'s ``detections`` table to ``out`` (default ``ROOT/reports/filter.png``)
    and return what it plotted. Score panels beyond ``conf`` appear only when some row has that score."""
    root = Path(root)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if not dm.table_exists(root, "detections"):
        raise ValueError(f"{root}/manifests has no detections table; run the filter stage first")
    columns = ["status", "reason", *(column for column, _ in SCORES)]
    table = dm.read_table(root, "detections", columns=columns).to_pandas()
    if table.empty:
        raise ValueError(f"{root}/manifests/detections has no rows; run the filter stage first")
    labels = [
        outcome_label(s, r) for s, r in zip(table["status"], table["reason"].where(table["reason"].notna(), None))
    ]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    # kept first, then reject reasons by count, then failures
    order = sorted(counts, key=lambda k: (k != "kept", "/" in k, -counts[k], k))
    outcomes = {k: counts[k] for k in order}
    kept = (table["status"] == Status.OK).to_numpy()
    bands = {"conf": conf_band, "identity_score": identity_band, "view_score": view_band}
    panels = []
    for column, _ in SCORES:
        if column not in table or (column != "conf" and table[column].isna().all()):
            continue
        panels.append(_panel(column, table[column].to_numpy(dtype=float), kept, bands[column], bins))
    fig = new_figure(5.0 + 4.5 * len(panels), 3.6)
    axes = fig.subplots(1, 1 + len(panels), squeeze=False, gridspec_kw={"wspace": 0.35})[0]
    _draw_outcomes(axes[0], outcomes)
    without = int(table["conf"].isna().sum()) if "conf" in table else len(table)
    titles = dict(SCORES)
    titles["conf"] += f" ({without} image(s) without a detection)" if without else ""
    for ax, panel in zip(axes[1:], panels):
        _draw_panel(ax, panel, titles[panel.column], conf_min)
    path = save_png(fig, Path(out) if out is not None else reports_dir(root) / "filter.png")
    return FilterReport(outcomes, panels, conf_min, without, path, bands)
