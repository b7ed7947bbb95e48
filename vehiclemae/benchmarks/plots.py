"""Figures of the paper's qualitative comparison: pair-distance distributions and t-SNE feature maps (PNG, Agg)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data_manifests import atomic_write_bytes

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


def plot_tsne(
    entries: list[tuple[str, torch.Tensor, np.ndarray]],
    out: str | Path,
    max_ids: int = 20,
    seed: int = 0,
    perplexity: float = 30.0,
) -> Path:
    """One t-SNE panel per model over the images of (at most) ``max_ids`` identities, coloured by id."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    fig, axes = plt.subplots(1, len(entries), figsize=(4.2 * len(entries), 4.0), squeeze=False)
    for ax, (label, feats, pids) in zip(axes[0], entries):
        pids = np.asarray(pids)
        chosen = np.random.default_rng(seed).permutation(np.unique(pids))[:max_ids]
        keep = np.isin(pids, chosen)
        x = F.normalize(feats[torch.from_numpy(keep)].float(), dim=1).numpy()
        if len(x) < 5:
            raise ValueError(f"{label}: t-SNE needs at least 5 images, got {len(x)}")
        emb = TSNE(
            n_components=2, perplexity=min(perplexity, (len(x) - 1) / 3), init="pca", random_state=seed
        ).fit_transform(x)
        colours = np.searchsorted(np.sort(chosen), pids[keep])
        ax.scatter(emb[:, 0], emb[:, 1], c=colours, cmap="tab20", s=10)
        ax.set_title(f"{label} ({len(chosen)} ids, {len(x)} images)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out = Path(out)
    atomic_write_bytes(out, _figure_bytes(fig))
    plt.close(fig)
    return out
