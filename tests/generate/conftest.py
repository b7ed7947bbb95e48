"""Fixtures of the generation tests: one tiny Stable Diffusion pipeline per session, toy-world subjects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import data_manifests as dm
from pipeline.generate.common import ModelsConfig, write_png
from pipeline.generate.tiny_models import TinySDSpec, save_tiny_pipeline

torch.set_num_threads(1)  # two threads per process on the shared 2-core machine thrash (10x slower)

# Smaller than the default toy model so every test stays fast; same classes and code paths.
TEST_SPEC = TinySDSpec(sample_size=16, layers_per_block=1, text_layers=2, bpe_merges=100)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd", spec=TEST_SPEC, seed=0)


@pytest.fixture
def models(tiny_model: Path) -> ModelsConfig:
    return ModelsConfig(base=str(tiny_model))


def draw_vehicle(seed: int, size: int) -> np.ndarray:
    """A simple synthetic photo ``(size, size, 3)`` uint8: a coloured box with a darker window band on a grey road."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 90, np.uint8)
    x0, y0 = rng.integers(2, size // 4, 2)
    x1, y1 = size - rng.integers(2, size // 4, 2)
    color = rng.integers(40, 255, 3)
    image[y0:y1, x0:x1] = color
    image[y0 : y0 + (y1 - y0) // 3, x0 + 2 : x1 - 2] = color // 3
    return image


def make_toy_subjects(root: Path, n: int = 2, size: int = 32, images: int = 2) -> list[str]:
    """``n`` toy-world identities (attributes from ``sample_identity``, as `diffveri toyworld` writes them) with
    ``images`` drawn instance photos each (drawn here, so the DreamBooth tests do not depend on the renderer)."""
    from pipeline.toyworld import sample_identity

    rows = []
    for index in range(n):
        ident = sample_identity(seed=0, index=index)
        paths = []
        for k in range(images):
            rel = f"subjects/{ident.identity_id}/{k}.png"
            write_png(root / rel, draw_vehicle(100 * index + k, size))
            paths.append(rel)
        rows.append(
            {
                "identity_id": ident.identity_id,
                "class_name": ident.class_name,
                "token": None,
                "instance_images": paths,
                "source": "toyworld",
                "attributes": json.dumps(ident.attributes()),
                "status": "ok",
            }
        )
    dm.upsert(root, "subjects", rows)
    return [r["identity_id"] for r in rows]


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make_toy_subjects(root)
    return root
