"""Fixtures of the generation tests: one tiny Stable Diffusion pipeline per session, toy-world subjects."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.generate.common import ModelsConfig
from pipeline.generate.tiny_models import TinySDSpec, save_tiny_pipeline

from .helpers import make_toy_subjects

torch.set_num_threads(1)  # two threads per process on the shared 2-core machine thrash (10x slower)

# Smaller than the default toy model so every test stays fast; same classes and code paths.
TEST_SPEC = TinySDSpec(sample_size=16, layers_per_block=1, text_layers=2, bpe_merges=100)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd", spec=TEST_SPEC, seed=0)


@pytest.fixture
def models(tiny_model: Path) -> ModelsConfig:
    return ModelsConfig(base=str(tiny_model))


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make_toy_subjects(root)
    return root
