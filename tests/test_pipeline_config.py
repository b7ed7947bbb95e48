from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from data_manifests.config import load_config, section
from pipeline.config import load_config as load_pipeline_config


@dataclass
class Stage:
    steps: int = 1
    seed: int = 0


@dataclass
class Filter:
    conf_min: float = 0.5
    classes: tuple[str, ...] = ("car",)
    name: str | None = None


@dataclass
class Profile:
    seed: int = 0
    stage: Stage = field(default_factory=Stage)
    other: Stage = field(default_factory=Stage)
    filter: Filter = field(default_factory=Filter)


def _load(path: Path, overrides: list[str] | None = None) -> Profile:
    return load_config(Profile, path, overrides or [], kind="pipeline")


def test_section_types_overrides_and_top_level_seed(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("seed: 7\nstage:\n  steps: 3\nother:\n  seed: 2\n")
    cfg = _load(path, ["stage.steps=5"])
    assert cfg.stage == Stage(steps=5, seed=7)  # inherits the profile's seed
    assert cfg.other.seed == 2  # its own seed wins
    assert section({"seed": 7, "stage": {"steps": 5}}, "stage", Stage) == Stage(steps=5, seed=7)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['step'\] \(did you mean 'steps'\?\); valid keys"):
        section({"stage": {"step": 1}}, "stage", Stage)
    with pytest.raises(ValueError, match="key=value"):
        _load(path, ["stage.steps"])


def test_values_of_the_wrong_type_are_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("filter:\n  conf_min: 0.4\n")
    with pytest.raises(ValueError, match=r"filter.conf_min: expected a number, got \[1, 2\]"):
        _load(path, ["filter.conf_min=[1,2]"])
    with pytest.raises(ValueError, match=r"'stage'.steps: expected an integer, got 'many'"):
        section({"stage": {"steps": "many"}}, "stage", Stage)
    # Numbers that YAML 1.1 reads as strings ("1e-4") and ints for floats still work; lists become tuples.
    cfg = _load(path, ["filter.conf_min=1e-4", "filter.classes=[car,bus]"]).filter
    assert cfg == Filter(conf_min=1e-4, classes=("car", "bus"))
    assert section({"filter": {"conf_min": 1, "name": None}}, "filter", Filter).conf_min == 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("filtr.conf_min=0.9", r"unknown section 'filtr' \(did you mean 'filter'\?\)"),
        ("runtime.task_runer=dask", r"runtime: unknown key\(s\) \['task_runer'\] \(did you mean 'task_runner'\?\)"),
        ("segment.finetune.stpes=3", r"segment.finetune: unknown key\(s\) \['stpes'\] \(did you mean 'steps'\?\)"),
        ("sed=3", r"unknown key\(s\) \['sed'\] \(did you mean 'seed'\?\)"),
        ("filter.conf_min=high", r"filter.conf_min: expected a number, got 'high'"),
        ("runtime.task_runner=spark", r"runtime.task_runner must be one of"),
    ],
)
def test_the_pipeline_profile_is_checked_whole_when_loaded(override: str, message: str) -> None:
    """A misspelt section or key of any stage fails at load time, naming the nearest valid name."""
    with pytest.raises(ValueError, match=rf"configs/pipeline/toy.yaml \+ --set: {message}"):
        load_pipeline_config("toy", [override])


def test_pipeline_values_are_parsed_by_their_declared_type() -> None:
    cfg = load_pipeline_config("toy", ["dreambooth.learning_rate=1e-4", "filter.conf_min=1"])
    assert cfg["dreambooth"]["learning_rate"] == 1e-4 and isinstance(cfg["dreambooth"]["learning_rate"], float)
    assert isinstance(cfg["filter"]["conf_min"], float)
    # every section is resolved (defaults filled in) and every section without its own seed takes the profile's
    assert load_pipeline_config("toy", ["seed=3"])["runtime"]["task_runner"] == "threads"


def test_every_profile_under_configs_loads_strictly() -> None:
    """Every YAML under configs/ loads with its loader: unknown keys and mistyped values there are errors."""
    from vehiclemae.config import load_config as load_vehiclemae_config
    from vehiclemae.engine.config import PretrainConfig
    from vehiclemae.reid.config import FinetuneConfig

    root = Path(__file__).resolve().parents[1] / "configs"
    loaded = []
    for path in sorted((root / "pipeline").glob("*.yaml")):
        loaded.append(load_pipeline_config(path)["profile"])
    for path in sorted((root / "vehiclemae").glob("*.yaml")):
        cls = FinetuneConfig if path.stem.startswith("finetune") else PretrainConfig
        loaded.append(load_vehiclemae_config(cls, path))
    assert len(loaded) == len(list(root.glob("*/*.yaml"))) >= 7
    # configs/reproduce_toy.yaml: its condition overrides and pipeline overrides are keys of the packages' configs
    experiment = yaml.safe_load((root / "reproduce_toy.yaml").read_text())
    for sets in experiment["conditions"].values():
        load_vehiclemae_config(PretrainConfig, "toy", [f"{k}={v}" for k, v in (sets or {}).items()])
    for profile in experiment["profiles"].values():
        load_pipeline_config("toy", profile.get("pipeline_overrides") or [])
