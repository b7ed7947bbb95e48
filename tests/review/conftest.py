from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import reviewed_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data root with 2 identities x 4 kept images (detections from known boxes), confidences 0.3 ... 0.95."""
    return reviewed_root(tmp_path / "data")
