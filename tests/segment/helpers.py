"""Tiny models and annotated roots for the segment tests (real segment_anything modules, random weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_manifests import VIEW_CLASSES_PVEN, read_rows, upsert
from pipeline.segment.model import ModelSpec, ViewSegmenter, build_segmenter, save_segmenter
from pipeline.toyworld.synthetic import write_annotated_world

TINY = dict(
    img_size=64, patch_size=8, embed_dim=32, depth=1, num_heads=2, prompt_dim=32, decoder_depth=1,
    decoder_mlp_dim=64, decoder_heads=2, iou_head_hidden_dim=32,
)  # fmt: skip


def tiny_spec(**overrides) -> ModelSpec:
    return ModelSpec(**{**TINY, **overrides})


def tiny_segmenter(seed: int = 0, classes: tuple[str, ...] = VIEW_CLASSES_PVEN, **overrides) -> ViewSegmenter:
    import torch

    torch.manual_seed(seed)
    return build_segmenter(tiny_spec(**overrides), classes).eval()


def annotated_root(root: Path, identities: int = 3, images: int = 2, size: int = 64, seed: int = 0) -> list[str]:
    """A box-vehicle world (fast; pixels independent of the toy world's renderer) with images, generations and
    segments."""
    return write_annotated_world(root, identities, images, size=size, seed=seed, backend="boxes")


def pipeline_root(root: Path, identities: int = 3, images: int = 2, size: int = 64) -> list[str]:
    """An annotated world plus ok ``detections`` rows (true boxes) and ``segments_gt``, as the pipeline has them.

    The ground truth moves from ``segments`` to ``segments_gt`` so that ``segments`` is left for predictions.
    """
    ids = annotated_root(root, identities, images, size)
    truth = read_rows(root, "segments")
    import shutil

    from data_manifests import write_table
    from data_manifests.store import table_dir

    write_table(root, "segments_gt", truth)
    shutil.rmtree(table_dir(root, "segments"))
    upsert(
        root,
        "detections",
        [{"image_id": r["image_id"], "n_vehicles": 1, "bbox": r["bbox"], "conf": 0.9, "cls": 2,
          "detector_ref": "test", "status": "ok"} for r in truth],
    )  # fmt: skip
    return ids


def save_tiny_checkpoint(path: Path, seed: int = 0) -> str:
    return save_segmenter(path, tiny_segmenter(seed))


def random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
