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


@dataclass
class Filter:
    conf_min: float = 0.5
    classes: tuple[str, ...] = ("car",)
    name: str | None = None


def test_values_of_the_wrong_type_are_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("filter:\n  conf_min: 0.4\n")
    with pytest.raises(ValueError, match=r"'filter'.conf_min: expected a number, got \[1, 2\]"):
        section(load_config(path, ["filter.conf_min=[1,2]"]), "filter", Filter)
    with pytest.raises(ValueError, match=r"'stage'.steps: expected an integer, got 'many'"):
        section({"stage": {"steps": "many"}}, "stage", Stage)
    # Numbers that YAML 1.1 reads as strings ("1e-4") and ints for floats still work; lists become tuples.
    cfg = section(load_config(path, ["filter.conf_min=1e-4", "filter.classes=[car,bus]"]), "filter", Filter)
    assert cfg == Filter(conf_min=1e-4, classes=("car", "bus"))
    assert section({"filter": {"conf_min": 1, "name": None}}, "filter", Filter).conf_min == 1.0
