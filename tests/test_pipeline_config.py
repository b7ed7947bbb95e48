from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import load_config, section


@dataclass
class Stage:
    steps: int = 1
    seed: int = 0


def test_section_types_overrides_and_top_level_seed(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("seed: 7\nstage:\n  steps: 3\nother:\n  seed: 2\n")
    cfg = load_config(path, ["stage.steps=5"])
    assert section(cfg, "stage", Stage) == Stage(steps=5, seed=7)  # inherits the profile's seed
    assert section(cfg, "other", Stage).seed == 2  # its own seed wins
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['step'\]; valid keys"):
        section({"stage": {"step": 1}}, "stage", Stage)
    with pytest.raises(ValueError, match="key=value"):
        load_config(path, ["stage.steps"])
