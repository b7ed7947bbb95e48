"""Figures of the paper's qualitative comparison: pair-distance distributions and t-SNE feature maps (PNG, Agg)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data_manifests import atomic_write_bytes
from data_manifests.seeds import rng

logger = logging.getLogger(__name__)


def _figure_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def pair_distances(features: torch.Tensor, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances ``1 - cos`` of all positive (same id) and negative pairs ``i < j`` of ``features (N, D)``."""
    f = F.normalize(features.float(), dim=1)
    dist = (1.0 - f @ f.T).numpy()
    iu = np.triu_indices(len(pids), k=1)
    same = np.asarray(pids)[iu[0]] == np.asarray(pids)[iu[1]]
    d = dist[iu]
    return d[same], d[~same]


def plot_distance_distributions(
    entries: list[tuple[str, torch.Tensor, np.ndarray]], out: str | Path, bins: int = 50
) -> Path:
    """One panel per model: histograms (densities) of positive vs negative pair distances.

    ``entries``: ``(label, features (N, D), pids (N,))``. Each panel's title gives the means and the overlap
    (the shared area of the two densities: lower separates identities better).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(entries), figsize=(4.2 * len(entries), 3.4), squeeze=False)
    edges = np.linspace(0.0, 2.0, bins + 1)
    for ax, (label, feats, pids) in zip(axes[0], entries):
        pos, neg = pair_distances(feats, pids)
        if pos.size == 0:
            raise ValueError(f"{label}: no positive pairs (every id has a single image)")
        hp, _ = np.histogram(pos, edges, density=True)
        hn, _ = np.histogram(neg, edges, density=True)
        overlap = float(np.minimum(hp, hn).sum() * (edges[1] - edges[0]))
        ax.hist(pos, edges, density=True, alpha=0.6, color="tab:green", label=f"positive (n={pos.size})")
        ax.hist(neg, edges, density=True, alpha=0.6, color="tab:red", label=f"negative (n={neg.size})")
        ax.set_title(f"{label}\nmean pos {pos.mean():.2f} / neg {neg.mean():.2f}, overlap {overlap:.2f}", fontsize=9)
        ax.set_xlabel("cosine distance")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("density")
    fig.tight_layout()
    out = Path(out)
    atomic_write_bytes(out, _figure_bytes(fig))
    plt.close(fig)
    return out


def _tsne_embedding(feats: torch.Tensor, seed: int, perplexity: float, label: str) -> np.ndarray:
    from sklearn.manifold import TSNE

    x = F.normalize(feats.float(), dim=1).numpy()
    if len(x) < 5:
        raise ValueError(f"{label}: t-SNE needs at least 5 images, got {len(x)}")
    return TSNE(
        n_components=2, perplexity=min(perplexity, (len(x) - 1) / 3), init="pca", random_state=seed
    ).fit_transform(x)


def plot_tsne(
    entries: list[tuple[str, torch.Tensor, np.ndarray]],
    out: str | Path,
    max_ids: int = 20,
    seed: int = 0,
    perplexity: float = 30.0,
    views: list[np.ndarray] | None = None,
) -> Path:
    """One t-SNE panel per model over the images of (at most) ``max_ids`` identities, coloured by id.

    ``views``: per entry, each image's view label (``(N,)`` strings, e.g. the toy world's view bins); then a second
    row shows the same embedding coloured by view, with a legend: a map whose clusters follow the view rather than the
    identity shows features that encode the viewpoint.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if views is not None and len(views) != len(entries):
        raise ValueError(f"{len(views)} view lists for {len(entries)} models")
    rows = 2 if views is not None else 1
    fig, axes = plt.subplots(rows, len(entries), figsize=(4.2 * len(entries), 4.0 * rows), squeeze=False)
    for col, (label, feats, pids) in enumerate(entries):
        pids = np.asarray(pids)
        chosen = rng(seed, "reid.plots.identities").permutation(np.unique(pids))[:max_ids]
        keep = np.isin(pids, chosen)
        emb = _tsne_embedding(feats[torch.from_numpy(keep)], seed, perplexity, label)
        colours = np.searchsorted(np.sort(chosen), pids[keep])
        ax = axes[0][col]
        ax.scatter(emb[:, 0], emb[:, 1], c=colours, cmap="tab20", s=10)
        ax.set_title(f"{label} ({len(chosen)} ids, {int(keep.sum())} images): by identity", fontsize=9)
        if views is not None:
            view = np.asarray(views[col])[keep]
            ax = axes[1][col]
            for k, name in enumerate(sorted(set(view.tolist()))):
                sel = view == name
                ax.scatter(emb[sel, 0], emb[sel, 1], s=10, color=plt.get_cmap("tab10")(k % 10), label=name)
            ax.set_title(f"{label}: by view", fontsize=9)
            ax.legend(fontsize=7, markerscale=1.5, loc="best")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out = Path(out)
    atomic_write_bytes(out, _figure_bytes(fig))
    plt.close(fig)
    return out


def plot_cmc(curves: list[tuple[str, list[float]]], out: str | Path, title: str = "", max_rank: int = 50) -> Path:
    """CMC curves (matching rate in percent at ranks 1..R) of one or more models / test sizes, with Rank-1/5/10
    marked in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("plot_cmc needs at least one curve")
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for label, cmc in curves:
        y = np.asarray(cmc, dtype=np.float64)[:max_rank]
        ranks = np.arange(1, len(y) + 1)
        marks = ", ".join(f"R{r} {y[r - 1]:.1f}" for r in (1, 5, 10) if r <= len(y))
        ax.plot(ranks, y, marker="o", markersize=2.5, linewidth=1.4, label=f"{label} ({marks})")
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_xscale("log")
    longest = max(min(len(c), max_rank) for _, c in curves)
    ticks = [r for r in (1, 2, 5, 10, 20, 50, 100) if r <= longest]
    ax.set_xticks(ticks, [str(r) for r in ticks])
    ax.minorticks_off()
    ax.set_ylim(0, 100.5)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    atomic_write_bytes(out, _figure_bytes(fig))
    plt.close(fig)
    return out


def retrieval_examples(
    query_paths: list[Path],
    gallery_paths: list[Path],
    dist: np.ndarray,
    same: np.ndarray,
    k: int = 5,
    size: int = 64,
) -> np.ndarray:
    """A picture of retrievals: one row per query, the query then its ``k`` nearest gallery images, each framed green
    (same identity) or red (another identity). ``dist (Q, G)``, ``same (Q, G)`` bool (same identity), rows in query
    order. Returns ``(H, W, 3) uint8``."""
    from PIL import Image, ImageDraw, ImageOps

    from data_manifests import open_image

    pad, border = 4, 3
    k = min(k, dist.shape[1])
    width = (k + 1) * (size + pad) + pad + size // 2
    canvas = Image.new("RGB", (width, len(query_paths) * (size + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)

    def tile(path: Path, colour: tuple[int, int, int] | None) -> Image.Image:
        with open_image(path) as image:
            im = ImageOps.pad(image.convert("RGB"), (size - 2 * border, size - 2 * border))
        return ImageOps.expand(im, border=border, fill=colour or (255, 255, 255))

    for row, q in enumerate(query_paths):
        y = pad + row * (size + pad)
        canvas.paste(tile(q, (60, 60, 60)), (pad, y))
        order = np.argsort(dist[row], kind="stable")[:k]
        for col, g in enumerate(order):
            x = pad + (col + 1) * (size + pad) + size // 2
            colour = (40, 170, 60) if same[row, g] else (210, 50, 50)
            canvas.paste(tile(gallery_paths[g], colour), (x, y))
        x0, mid = pad + size + size // 8, y + size // 2  # an arrow from the query to its neighbours
        draw.polygon([(x0, mid - size // 8), (x0 + size // 4, mid), (x0, mid + size // 8)], fill=(90, 90, 90))
    return np.asarray(canvas)
