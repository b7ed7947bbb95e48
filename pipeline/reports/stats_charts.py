"""Charts of the assembled dataset (``diffveri`` rows with status ``ok``), beside the text statistics.

Four PNGs under ``ROOT/reports/stats/``: ``views.png`` (images per dominant view; real photos have no masks and
count as ``no mask``), ``identities.png`` (how many identities have how many images), ``sources.png`` (synthetic
and real images per split) and ``resolution.png`` (image width x height, one dot per distinct size, area by count).
``diffveri manifests stats --root ROOT --charts`` and ``diffveri report stats --root ROOT`` write them and print
their paths; the ``build-diffveri`` flow adds them to its statistics artifact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from matplotlib.ticker import MaxNLocator

import data_manifests as dm
from data_manifests import VIEW_CLASSES_PVEN, VIEW_CLASSES_TOYWORLD

from .figures import KEPT, REJECTED, new_figure, reports_dir, save_png

STATS = "stats"  # ROOT/reports/stats/
NO_MASK = "no mask"
NO_MASK_COLOUR = "#999999"
SOURCE_COLOURS = {"synthetic": KEPT, "real": "#2c7fb8", "unknown": "#999999"}


@dataclass(frozen=True)
class StatsCharts:
    """What the charts show, and where they are (chart name -> PNG)."""

    views: dict[str, int]
    images_per_identity: dict[str, int]
    sources_by_split: dict[str, dict[str, int]]
    resolutions: dict[str, int]  # "WxH" -> images
    paths: dict[str, Path]


def _view_order(views: dict[str, int]) -> list[str]:
    known = [v for v in dict.fromkeys(VIEW_CLASSES_PVEN[1:] + VIEW_CLASSES_TOYWORLD[1:]) if v in views]
    rest = sorted(set(views) - set(known) - {NO_MASK})
    return known + rest + ([NO_MASK] if NO_MASK in views else [])


def _views_chart(views: dict[str, int], path: Path) -> Path:
    fig = new_figure(5.0, 3.2)
    ax = fig.add_subplot()
    order = _view_order(views)
    bars = ax.bar(order, [views[v] for v in order], color=[NO_MASK_COLOUR if v == NO_MASK else KEPT for v in order])
    ax.bar_label(bars, fontsize=7)
    ax.set_title(f"images per dominant view ({sum(views.values())} images)", fontsize=9)
    ax.set_ylabel("images", fontsize=8)
    ax.tick_params(axis="x", labelsize=8, rotation=30)
    return save_png(fig, path)


def _identities_chart(per_identity: dict[str, int], path: Path) -> Path:
    fig = new_figure(5.0, 3.2)
    ax = fig.add_subplot()
    counts = np.asarray(list(per_identity.values()))
    hist = Counter(counts.tolist())
    xs = sorted(hist)
    ax.bar(xs, [hist[x] for x in xs], width=0.8, color=KEPT)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    spread = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    ax.set_title(f"{len(counts)} identities: {spread} images each (mean {counts.mean():.1f})", fontsize=9)
    ax.set_xlabel("images per identity", fontsize=8)
    ax.set_ylabel("identities", fontsize=8)
    return save_png(fig, path)


def _sources_chart(by_split: dict[str, dict[str, int]], path: Path) -> Path:
    fig = new_figure(5.0, 3.2)
    ax = fig.add_subplot()
    splits = sorted(by_split)
    sources = sorted({s for d in by_split.values() for s in d})
    bottom = np.zeros(len(splits))
    for source in sources:
        values = np.asarray([by_split[sp].get(source, 0) for sp in splits], dtype=float)
        bars = ax.bar(splits, values, bottom=bottom, label=source, color=SOURCE_COLOURS.get(source))
        ax.bar_label(bars, labels=[f"{int(v)}" if v else "" for v in values], label_type="center", fontsize=7)
        bottom += values
    ax.set_title("images per split and source", fontsize=9)
    ax.set_ylabel("images", fontsize=8)
    ax.legend(fontsize=7)
    return save_png(fig, path)


def _resolution_chart(widths: np.ndarray, heights: np.ndarray, path: Path) -> tuple[dict[str, int], Path]:
    sizes = Counter(zip(widths.tolist(), heights.tolist()))
    fig = new_figure(4.2, 3.6)
    ax = fig.add_subplot()
    w, h, n = [k[0] for k in sizes], [k[1] for k in sizes], list(sizes.values())
    ax.scatter(w, h, s=[20 + 200 * c / max(n) for c in n], alpha=0.5, color=KEPT, edgecolors="black", linewidths=0.3)
    ax.plot(
        [widths.mean()], [heights.mean()], "x", color=REJECTED, label=f"mean {widths.mean():.0f} x {heights.mean():.0f}"
    )
    top = max(widths.max(), heights.max()) * 1.1
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_title(f"resolution: {len(sizes)} distinct size(s)", fontsize=9)
    ax.set_xlabel("width (px)", fontsize=8)
    ax.set_ylabel("height (px)", fontsize=8)
    ax.legend(fontsize=7, loc="lower left")
    return {f"{a}x{b}": c for (a, b), c in sorted(sizes.items())}, save_png(fig, path)


def stats_charts(root: str | Path, out_dir: str | Path | None = None) -> StatsCharts:
    """Draw the four charts of ``root``'s ``diffveri`` table (``ok`` rows) into ``out_dir`` (default
    ``ROOT/reports/stats``) and return what they show."""
    root = Path(root)
    if not dm.table_exists(root, "diffveri"):
        raise ValueError(
            f"{root}/manifests has no diffveri table; the charts describe the assembled dataset (run assemble)"
        )
    columns = ["identity_id", "split", "width", "height", "dominant_view", "source"]
    df = dm.read_table(root, "diffveri", columns=columns, filter=pc.field("status") == dm.Status.OK).to_pandas()
    if df.empty:
        raise ValueError(f"{root}/manifests/diffveri has no ok rows to chart")
    folder = Path(out_dir) if out_dir is not None else reports_dir(root) / STATS
    views = {str(k): int(v) for k, v in df["dominant_view"].fillna(NO_MASK).value_counts().items()}
    per_identity = {str(k): int(v) for k, v in df["identity_id"].value_counts().sort_index().items()}
    by_split: dict[str, dict[str, int]] = {}
    for (split, source), n in df.fillna({"source": "unknown"}).groupby(["split", "source"]).size().items():
        by_split.setdefault(str(split), {})[str(source)] = int(n)
    paths = {
        "views": _views_chart(views, folder / "views.png"),
        "identities": _identities_chart(per_identity, folder / "identities.png"),
        "sources": _sources_chart(by_split, folder / "sources.png"),
    }
    widths, heights = df["width"].to_numpy(), df["height"].to_numpy()
    resolutions, paths["resolution"] = _resolution_chart(widths, heights, folder / "resolution.png")
    return StatsCharts(views, per_identity, by_split, resolutions, paths)
