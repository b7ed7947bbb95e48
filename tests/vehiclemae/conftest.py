"""Fixtures: a small diffveri table (toy-world renders) and a clean accelerate state per test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.toyworld.synthetic import write_diffveri


@pytest.fixture(scope="session")
def diffveri_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 identities x 4 views at 64 px, written through data_manifests."""
    return write_diffveri(tmp_path_factory.mktemp("diffveri"), identities=6, size=64)


@pytest.fixture(autouse=True)
def _small_threads_and_fresh_accelerate():
    torch.set_num_threads(1)
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
